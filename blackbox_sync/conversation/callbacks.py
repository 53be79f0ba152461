"""User callbacks: who wants which frames, and running them so that none can hurt the reader.

A callback that raises is wrapped in a :class:`~.errors.CallbackError` and handed to the
``report`` function (the conversation keeps it in ``errors`` and passes it to ``on_error``). When
no error callback is registered the traceback is also logged at ERROR on the ``blackbox_sync``
logger; if the program never configured logging, that record goes to Python's last-resort
handler (stderr), as it would for an application logger, so a failing callback is never silent.
"""

import logging
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple, Type, Union

from blackbox_sync.errors import BlackBoxError, CallbackError
from blackbox_sync.protocol.messages import Message, UnknownMessage
from blackbox_sync.redact import redact_text

log = logging.getLogger("blackbox_sync.callbacks")

Callback = Callable[[Any], Any]
ErrorCallback = Callable[[BlackBoxError], Any]
Key = Union[str, Type[Message]]

ANY = "*"


def wire_type(message: Message) -> str:
    """The ``type`` a message has on the wire (an unknown message keeps its own)."""
    return message.type if isinstance(message, UnknownMessage) else message.TYPE


class Callbacks:
    """Frame callbacks keyed by wire type, message class or ``"*"``, plus error callbacks."""

    def __init__(
        self,
        report: Optional[Callable[[BlackBoxError], None]] = None,
        secrets: Tuple[str, ...] = (),
    ) -> None:
        self._sink = report or self.report
        self._secrets = secrets
        self._lock = threading.Lock()
        # The callback each thread is in, by thread ident: close() tells a stuck reader by it.
        self._active: Dict[int, Callable[..., Any]] = {}
        self._idle = threading.Condition()
        self._waiting = 0
        self._frames: List[Tuple[Key, Callback]] = []
        self._errors: List[ErrorCallback] = []
        self._hooks: Dict[str, List[Callable[..., Any]]] = {}
        # Who gets a frame depends only on its wire type and class: computed once per pair.
        self._routes: Dict[Tuple[str, type], Tuple[Callback, ...]] = {}

    def add(self, key: Key, callback: Callback) -> None:
        """Call ``callback(message)`` for every frame that ``key`` matches."""
        if not (isinstance(key, str) or (isinstance(key, type) and issubclass(key, Message))):
            raise TypeError("on() takes a wire type string, a message class or '*'")
        if not callable(callback):
            raise TypeError("a callback must be callable")
        with self._lock:
            self._frames.append((key, callback))
            self._routes.clear()

    def remove(self, key: Key, callback: Callback) -> None:
        """Stop calling ``callback`` for ``key`` (no error if it was not registered)."""
        with self._lock:
            self._frames = [(k, c) for k, c in self._frames if (k, c) != (key, callback)]
            self._routes.clear()

    def add_error(self, callback: ErrorCallback) -> None:
        """Call ``callback(error)`` for every failure the library handled on its own threads."""
        if not callable(callback):
            raise TypeError("a callback must be callable")
        with self._lock:
            self._errors.append(callback)

    def dispatch(self, message: Message) -> None:
        """Run the matching callbacks in order; one that raises is reported, never fatal."""
        kind = wire_type(message)
        route = (kind, type(message))
        matching = self._routes.get(route)
        if matching is None:
            with self._lock:
                matching = tuple(
                    c
                    for k, c in self._frames
                    if k in (ANY, kind) or (isinstance(k, type) and isinstance(message, k))
                )
                self._routes[route] = matching
        for callback in matching:
            self._run(callback, f"callback on a {kind!r} frame", message)

    def add_hook(self, name: str, callback: Callable[..., Any]) -> None:
        """Call ``callback(*args)`` whenever hook ``name`` fires (see :meth:`fire`)."""
        if not callable(callback):
            raise TypeError("a callback must be callable")
        with self._lock:
            self._hooks.setdefault(name, []).append(callback)

    def has_hook(self, name: str) -> bool:
        """True when hook ``name`` has callbacks (lets hot paths skip building arguments)."""
        return bool(self._hooks.get(name))

    def fire(self, name: str, *args: Any) -> None:
        """Run hook ``name``'s callbacks; one that raises is reported, never fatal."""
        for callback in tuple(self._hooks.get(name, ())):
            self._run(callback, f"{name} hook", *args)

    def running(self, thread_ident: int) -> "Optional[Callable[..., Any]]":
        """The callback thread ``thread_ident`` is running, if any."""
        return self._active.get(thread_ident)

    def wait_idle(self, thread_ident: int, timeout: float) -> "Optional[Callable[..., Any]]":
        """Wait up to ``timeout`` until thread ``thread_ident`` is in no callback; the callback
        it is still in, or ``None``."""
        with self._idle:
            self._waiting += 1
            try:
                self._idle.wait_for(lambda: thread_ident not in self._active, timeout)
            finally:
                self._waiting -= 1
        return self._active.get(thread_ident)

    def _run(self, callback: Callable[..., Any], role: str, *args: Any) -> None:
        try:
            self._call(callback, *args)
        except Exception as exc:
            self._failed(callback, role, exc)

    def _call(self, callback: Callable[..., Any], *args: Any) -> None:
        """Call ``callback``, marking this thread as inside it for :meth:`wait_idle`."""
        ident = threading.get_ident()
        outer = self._active.get(ident)  # a hook fired from inside another callback
        self._active[ident] = callback
        try:
            callback(*args)
        finally:
            if outer is None:
                del self._active[ident]
            else:
                self._active[ident] = outer
            if self._waiting:
                with self._idle:
                    self._idle.notify_all()

    def _failed(self, callback: Callable[..., Any], role: str, exc: Exception) -> None:
        label = callback_label(callback)
        text = redact_text(f"{role} {label} raised {type(exc).__name__}: {exc}", *self._secrets)
        record = log.makeRecord(
            log.name, logging.ERROR, __file__, 0, "%s", (text,), (type(exc), exc, exc.__traceback__)
        )
        if log.isEnabledFor(logging.ERROR):
            log.handle(record)
            if not self._errors and not _logging_configured(log) and logging.lastResort:
                # No on_error, and logging never configured: the record met only our own
                # NullHandler, so Python's last resort (stderr) shows it, as for an app's logger.
                logging.lastResort.handle(record)
        error = CallbackError(text, callback)
        error.__cause__ = exc
        self._sink(error)

    def report(self, error: BlackBoxError) -> None:
        """Hand ``error`` to the error callbacks; one that raises is logged and skipped."""
        with self._lock:
            callbacks = list(self._errors)
        for callback in callbacks:
            try:
                self._call(callback, error)
            except Exception:
                log.exception("error callback %r raised", callback)


def callback_label(callback: Callable[..., Any]) -> str:
    """How logs name a callback: its ``__qualname__``, else its ``repr``."""
    return str(getattr(callback, "__qualname__", None) or repr(callback))


def _logging_configured(logger: logging.Logger) -> bool:
    """True when a record of ``logger`` reaches a handler other than a ``NullHandler``."""
    node: Optional[logging.Logger] = logger
    while node is not None:
        if any(not isinstance(h, logging.NullHandler) for h in node.handlers):
            return True
        if not node.propagate:
            return False
        node = node.parent
    return False
