"""One BlackBox conversation per visitor, shared by all of that visitor's requests.

Thread-safety rules this module follows (they are the library's rules):

* A :class:`blackbox_sync.Conversation` may be used from any thread. Two requests of the same
  visitor that ``ask()`` at once are served one after the other, each with its own reply; the
  registry adds no lock of its own around ``ask()``.
* The registry's lock guards only its dictionary; connecting, asking and terminating happen
  outside it, so one slow agent never holds up other visitors. A per-visitor lock makes sure two
  simultaneous first requests open one conversation, not two.
* Nothing runs in the background: idle conversations are closed on the next access and at
  :meth:`ConversationRegistry.close_all` (call it at shutdown, e.g. with ``atexit``).
* A conversation lives in one process. With several worker processes, either pin each visitor to
  a worker (sticky sessions) or accept that a visitor who lands on another worker starts a new
  conversation there.
"""

import logging
import threading
import time
from typing import Callable, Dict, List, Optional

import blackbox_sync as bb

log = logging.getLogger(__name__)

Factory = Callable[[str], bb.Conversation]


class _Entry:
    def __init__(self) -> None:
        self.lock = threading.Lock()  # held while this visitor's conversation is being opened
        self.conversation: Optional[bb.Conversation] = None
        self.used = time.monotonic()


class ConversationRegistry:
    """Conversations keyed by visitor id, opened on first use with ``factory(key)``.

    A conversation that has ended (the agent said goodbye, the connection dropped) is replaced
    by a new one on the visitor's next question. ``max_idle`` seconds without a question close a
    conversation; ``max_conversations`` caps how many are open at once (the least recently used
    one is closed to make room). ``talk_first=True`` is for agents that greet the visitor: the
    greeting is awaited right after connecting, so it is never taken for the answer to the
    visitor's first question.
    """

    def __init__(
        self,
        factory: Factory,
        *,
        talk_first: bool = False,
        greeting_timeout: float = 15.0,
        max_idle: float = 15 * 60,
        max_conversations: int = 200,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = factory
        self._talk_first = talk_first
        self._greeting_timeout = greeting_timeout
        self._max_idle = max_idle
        self._max = max_conversations
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: Dict[str, _Entry] = {}

    def ask(self, key: str, text: str, timeout: float = 30.0) -> bb.Reply:
        """Relay ``text`` to ``key``'s conversation and wait for the agent's reply."""
        return self.conversation(key).ask(text, timeout=timeout)

    def conversation(self, key: str) -> bb.Conversation:
        """``key``'s live conversation, opened (and connected) if there is none."""
        stale: List[bb.Conversation] = []
        with self._lock:
            now = self._clock()
            stale.extend(self._evict(now, keep=key))
            entry = self._entries.setdefault(key, _Entry())
            entry.used = now
        self._close(stale)
        with entry.lock:
            current = entry.conversation
            if current is None or current.closed or current.phase is bb.Phase.ENDED:
                if current is not None:
                    current.close()
                conversation = self._factory(key)
                try:
                    conversation.connect()
                    if self._talk_first:
                        conversation.wait_for_reply(timeout=self._greeting_timeout)
                except BaseException:
                    conversation.close()
                    raise
                entry.conversation = current = conversation
            return current

    def get(self, key: str) -> Optional[bb.Conversation]:
        """``key``'s conversation if one was opened (possibly ended), without opening one."""
        with self._lock:
            entry = self._entries.get(key)
        return entry.conversation if entry is not None else None

    def end(self, key: str, timeout: float = 10.0) -> Optional[bb.ConversationResult]:
        """Terminate ``key``'s conversation and forget it; returns its result if there was one."""
        with self._lock:
            entry = self._entries.pop(key, None)
        if entry is None or entry.conversation is None:
            return None
        conversation = entry.conversation
        try:
            if conversation.phase is not bb.Phase.ENDED and not conversation.closed:
                return conversation.terminate(timeout=timeout)
            return conversation.result
        except bb.BlackBoxError as exc:
            log.warning("conversation for %s did not end cleanly: %s", key, exc)
            return conversation.result
        finally:
            conversation.close()

    def close_all(self) -> None:
        """Close every conversation (they end as if the visitor left). Safe to call twice."""
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        self._close([e.conversation for e in entries if e.conversation is not None])

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _evict(self, now: float, keep: str) -> List[bb.Conversation]:
        """Take idle and surplus entries out (lock held); their conversations are closed later."""
        order = sorted(self._entries.items(), key=lambda item: item[1].used)
        surplus = max(0, len(order) + (keep not in self._entries) - self._max)
        out: List[bb.Conversation] = []
        for key, entry in order:
            if key == keep:
                continue
            if surplus > 0 or now - entry.used > self._max_idle:
                surplus = max(0, surplus - 1)
                del self._entries[key]
                if entry.conversation is not None:
                    out.append(entry.conversation)
        return out

    @staticmethod
    def _close(conversations: List[bb.Conversation]) -> None:
        for conversation in conversations:
            # close(), not terminate(): the visitor is gone, and closing never blocks for long.
            conversation.close()
