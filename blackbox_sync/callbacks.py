"""User callbacks: who wants which frames, and running them so that none can hurt the reader."""

import logging
import threading
from typing import Any, Callable, Dict, List, Tuple, Type, Union

from .errors import BlackBoxError, CallbackError
from .messages import Message, UnknownMessage

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

    def __init__(self) -> None:
        self._lock = threading.Lock()
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

    def _run(self, callback: Callable[..., Any], role: str, *args: Any) -> None:
        try:
            callback(*args)
        except Exception as exc:
            label = getattr(callback, "__qualname__", repr(callback))
            log.exception("%s %s raised", role, label)
            error = CallbackError(f"{role} {label} raised {type(exc).__name__}: {exc}", callback)
            error.__cause__ = exc
            self.report(error)

    def report(self, error: BlackBoxError) -> None:
        """Hand ``error`` to the error callbacks; one that raises is logged and skipped."""
        with self._lock:
            callbacks = list(self._errors)
        for callback in callbacks:
            try:
                callback(error)
            except Exception:
                log.exception("error callback %r raised", callback)
