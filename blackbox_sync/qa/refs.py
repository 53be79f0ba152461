"""``module:function`` references in case files (tool handlers, custom checks, judges).

A reference is resolved relative to the suite file's folder, which joins ``sys.path`` once, the
way pytest finds a test's helper modules. Resolution is cached per process, so an executor
worker (a thread or a ``dask`` process) imports each module once.
"""

import importlib
import sys
import threading
from typing import Any, Callable, Dict, Optional, Tuple, Union

from blackbox_sync.errors import BlackBoxError

_lock = threading.Lock()
_cache: Dict[Tuple[str, Optional[str]], Callable[..., Any]] = {}


class RefError(BlackBoxError, ValueError):
    """A ``module:function`` reference that does not resolve to a callable."""


def resolve(ref: str, base_dir: Optional[str] = None) -> Callable[..., Any]:
    """Import ``module:function`` (dotted attribute paths allowed after the colon)."""
    key = (ref, base_dir)
    with _lock:
        found = _cache.get(key)
        if found is not None:
            return found
        module_name, sep, attr = ref.partition(":")
        if not sep or not module_name or not attr:
            raise RefError(f"{ref!r} is not a 'module:function' reference")
        if base_dir and base_dir not in sys.path:
            sys.path.insert(0, base_dir)
        try:
            target: Any = importlib.import_module(module_name)
        except ImportError as exc:
            raise RefError(f"{ref!r}: cannot import {module_name!r}: {exc}") from None
        for part in attr.split("."):
            try:
                target = getattr(target, part)
            except AttributeError:
                raise RefError(f"{ref!r}: {module_name!r} has no {attr!r}") from None
        if not callable(target):
            raise RefError(f"{ref!r} is not callable")
        _cache[key] = target
        return target  # type: ignore[no-any-return]


def as_callable(
    value: Union[str, Callable[..., Any]], base_dir: Optional[str] = None
) -> Callable[..., Any]:
    """A callable given directly (suites built in code) or by reference (case files)."""
    return resolve(value, base_dir) if isinstance(value, str) else value


def label(value: Any) -> str:
    """How a callable or reference is named in results."""
    if isinstance(value, str):
        return value
    module = getattr(value, "__module__", "") or ""
    name = getattr(value, "__qualname__", None) or type(value).__name__
    return f"{module}:{name}" if module else str(name)
