"""Stopping a run at once (Ctrl-C): close the conversations in flight so their turns end now.

The runner wraps its target in a :class:`StoppableTarget`, which registers every conversation it
opens with the run's :class:`OpenConversations`. On an interrupt the driver closes them all: a
blocking ``ask()`` then raises, each attempt ends within moments instead of playing its
remaining steps, and no new conversation can open. The registry lives in the driver's process
only; a worker in another process (dask) opens conversations the driver cannot reach, and its
futures are cancelled instead.
"""

import contextlib
import threading
from typing import Any, Dict, Iterator, List, Optional, Set

import attrs

from blackbox_sync.conversation.facade import Conversation
from blackbox_sync.errors import BlackBoxError
from blackbox_sync.qa.report import RunReport


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C. ``report`` holds the conversations that finished (they are
    in the JSONL too); ``unfinished`` counts the selected ones that did not."""

    def __init__(self, report: RunReport, unfinished: int) -> None:
        super().__init__(f"run interrupted; {unfinished} conversations did not finish")
        self.report = report
        self.unfinished = unfinished


class StoppedError(BlackBoxError, RuntimeError):
    """Raised instead of opening a conversation once the run is stopping."""


class OpenConversations:
    """The conversations a run has open, to close them all on an interrupt."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: Set[Conversation] = set()
        self._stopping = False

    def add(self, conv: Conversation) -> None:
        """Track ``conv``; raises :class:`StoppedError` once the run is stopping."""
        with self._lock:
            if self._stopping:
                raise StoppedError("the run was interrupted")
            self._open.add(conv)

    def discard(self, conv: Conversation) -> None:
        """Stop tracking ``conv`` (its attempt is over)."""
        with self._lock:
            self._open.discard(conv)

    def close_all(self) -> None:
        """Refuse new conversations and close the open ones, in parallel (a close waits for
        the service's half of the close handshake)."""
        with self._lock:
            self._stopping = True
            open_now: List[Conversation] = list(self._open)
        closers = [
            threading.Thread(target=conv.close, name="blackbox-qa-stop", daemon=True)
            for conv in open_now
        ]
        for closer in closers:
            closer.start()
        for closer in closers:
            closer.join()


_registries: Dict[str, OpenConversations] = {}
_registries_lock = threading.Lock()


@contextlib.contextmanager
def tracking(run_id: str) -> Iterator[OpenConversations]:
    """The registry of run ``run_id`` while the run goes."""
    registry = OpenConversations()
    with _registries_lock:
        _registries[run_id] = registry
    try:
        yield registry
    finally:
        with _registries_lock:
            _registries.pop(run_id, None)


def _registry(run_id: str) -> Optional[OpenConversations]:
    with _registries_lock:
        return _registries.get(run_id)


@attrs.define
class StoppableTarget:
    """A target whose conversations the driver can close; pickles like the target it wraps."""

    inner: Any
    run_id: str
    kind: str = ""

    @classmethod
    def wrap(cls, target: Any, run_id: str) -> "StoppableTarget":
        """Wrap ``target`` for run ``run_id``."""
        return cls(target, run_id, str(getattr(target, "kind", "")))

    def __getattr__(self, name: str) -> Any:
        # Anything else a target offers (``record_dir``, ...) is the wrapped target's. Dunder
        # names and ``inner`` itself are not forwarded: unpickling looks them up before
        # ``inner`` is set.
        if name.startswith("__") or name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def describe(self) -> Dict[str, Any]:
        """The wrapped target's description."""
        facts: Dict[str, Any] = self.inner.describe()
        return facts

    @contextlib.contextmanager
    def conversation(self, suite: str, **options: Any) -> Iterator[Conversation]:
        """The wrapped target's conversation, registered while the attempt uses it."""
        with self.inner.conversation(suite, **options) as conv:
            registry = _registry(self.run_id)
            if registry is None:  # another process than the driver's: nobody to stop it here
                yield conv
                return
            registry.add(conv)
            try:
                yield conv
            finally:
                registry.discard(conv)
