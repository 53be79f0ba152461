"""What one attempt saw, as it happened: every frame with the monotonic time it was decoded (so
latency is measured on the wire, not in the agent), and the transcript entries."""

import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from blackbox_sync.protocol.messages import (
    ConversationResult,
    ErrorMessage,
    Event,
    Message,
    TextMessage,
    ToolCallResult,
    ToolRequest,
    UnknownMessage,
)
from blackbox_sync.protocol.state import READY_EVENTS, TurnRule, counts_as_activity
from blackbox_sync.qa.results import Entry, ms_since


class Recorder:
    """The frames and transcript of one attempt; safe to feed from the conversation's threads."""

    def __init__(self, t0: float, rule: TurnRule, voice: bool = False) -> None:
        self.t0 = t0
        self.rule = rule
        self.voice = voice
        """A ``webCall``: the service's transcript of the user's clips joins the transcript."""
        self._lock = threading.Lock()
        self._frames: List[Tuple[float, Message]] = []
        self._entries: List[Entry] = []
        self._step: Optional[int] = None
        # A tool handler can start before this client's frame callback sees its request (the
        # pool is fed first), so whichever comes first logs the request, the other skips it.
        self._requests_logged_by: Dict[Tuple[str, str], int] = {}
        self._new_frame = threading.Condition(self._lock)
        self.closed = threading.Event()
        """Set when the socket closes: a ``wait`` step ends early, so an interrupt is prompt."""

    def at_step(self, step: Optional[int]) -> None:
        """Entries from now on belong to step ``step`` (0: the greeting; ``None``: none)."""
        with self._lock:
            self._step = step

    def add_entry(self, t: float, role: str, text: str = "", data: Any = None, *flags: str) -> None:
        """Add one transcript entry, timed ``t`` (monotonic seconds)."""
        with self._lock:
            entry = Entry(ms_since(self.t0, t), role, text, data, tuple(flags), self._step)
            self._entries.append(entry)

    def on_frame(self, message: Message) -> None:
        """The conversation's callback for every frame it receives."""
        t = time.monotonic()
        with self._lock:
            self._frames.append((t, message))
            self._new_frame.notify_all()
        if isinstance(message, TextMessage):
            if message.from_assistant:
                flags = ["partial"] if message.partial else []
                if not message.partial and self.rule.is_filler(message.text):
                    flags.append("filler")
                self.add_entry(t, "assistant", message.text, None, *flags)
            elif self.voice and not message.partial:
                self.add_entry(t, "user", message.text)  # what the service heard of the clip
        elif isinstance(message, ToolRequest):
            self.log_request(t, message.tool_name, message.args, by="frame")
        elif isinstance(message, ToolCallResult):
            self.add_entry(t, "tool_result", str(message.tool_name or ""), message.result)
        elif isinstance(message, Event):
            self.add_entry(t, "event", str(message.name))
        elif isinstance(message, ErrorMessage):
            self.add_entry(t, "error", str(message.message))
        elif isinstance(message, ConversationResult):
            self.add_entry(t, "result", str(message.status or ""), message.error_message)
        elif isinstance(message, UnknownMessage):
            self.add_entry(t, "event", f"unknown frame type {message.type!r}")

    def log_request(self, t: float, name: str, args: Any, by: str) -> None:
        """Log a tool request once, whether its ``frame`` or its ``handler`` comes first."""
        other = "handler" if by == "frame" else "frame"
        with self._lock:
            if self._requests_logged_by.get((other, name), 0) > 0:
                self._requests_logged_by[(other, name)] -= 1
                return
            key = (by, name)
            self._requests_logged_by[key] = self._requests_logged_by.get(key, 0) + 1
        self.add_entry(t, "tool_request", name, args)

    def frames(self) -> List[Tuple[float, Message]]:
        """Every frame so far, with its time."""
        with self._lock:
            return list(self._frames)

    def frames_between(self, start: float, end: float) -> List[Tuple[float, Message]]:
        """The frames timed from ``start`` to ``end``, both included."""
        with self._lock:
            return [(t, m) for t, m in self._frames if start <= t <= end]

    def last_activity(self, since: float) -> Optional[float]:
        """The latest turn activity since ``since`` (voice turns' quiet rule)."""
        with self._lock:
            times = [t for t, m in self._frames if t >= since and counts_as_activity(m, self.rule)]
        return max(times, default=None)

    def wait_for_frame(self, seconds: float) -> None:
        """Block until the next frame arrives or ``seconds`` pass."""
        with self._new_frame:
            self._new_frame.wait(seconds)

    def ready_time(self) -> float:
        """When the conversation became ready (the ``connection`` event), for talk-first."""
        with self._lock:
            for t, message in self._frames:
                if isinstance(message, Event) and message.name in READY_EVENTS:
                    return t
        return self.t0

    def snapshot(self) -> List[Entry]:
        """The transcript so far, in time order."""
        with self._lock:
            return sorted(self._entries, key=lambda e: e.t_ms)
