"""The one cattrs converter shared by WebSocket frames and REST models.

Rules, each stated once here:

* attribute ``snake_case`` ↔ wire ``camelCase``; a class may map an attribute to other wire paths
  (dotted, first match wins when reading, first path is written) through ``__wire__``;
* unknown wire fields are tolerated, and an attrs class with a ``raw`` attribute receives the whole
  wire object in it;
* ``None`` in an attribute whose default is ``None`` is left off the wire, unless the field is
  marked with :data:`KEEP_NONE` (the envelope's ``channelId``);
* primitives are checked, never coerced (``"5"`` is not an ``int``); :data:`LooseStr` is the
  exception for fields the service does not document, where any scalar is turned into text;
* timestamps are ISO 8601; ``Z`` and any number of fraction digits are accepted.
"""

import re
import sys
import typing
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Mapping, NewType, Optional, Tuple, TypeVar, Union

import attrs
import cattrs

T = TypeVar("T")

KEEP_NONE = "blackbox_sync.keep_none"
"""Field metadata key: write this attribute even when it is ``None``."""

LENIENT = "blackbox_sync.lenient"
"""Field metadata key: a value of the wrong shape reads as ``None`` instead of failing."""

LooseStr = NewType("LooseStr", str)
"""A ``str`` field that accepts any JSON scalar and keeps its text (for undocumented payloads)."""

_MISSING = object()
# From 3.11 on, fromisoformat (in C) reads every form the service sends, "Z" included.
_FAST_ISO = sys.version_info >= (3, 11)
_CAMEL = re.compile(r"_([a-z0-9])")
_ISO = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2})?)(?:[.,](\d+))?\s*(Z|z|[+-]\d{2}:?\d{2})?$"
)


def to_camel(name: str) -> str:
    """``tool_name`` → ``toolName``."""
    return _CAMEL.sub(lambda m: m.group(1).upper(), name)


def parse_timestamp(value: object) -> Optional[datetime]:
    """Read an ISO 8601 timestamp; ``None`` when ``value`` is not one (the raw frame keeps it)."""
    if not isinstance(value, str):
        return None
    if _FAST_ISO:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    match = _ISO.match(value.strip())
    if match is None:
        return None
    date, clock, fraction, zone = match.groups()
    if clock.count(":") == 1:
        clock += ":00"
    micros = (fraction or "0")[:6].ljust(6, "0")
    offset = (
        "+00:00" if zone in (None, "Z", "z") else zone if ":" in zone else f"{zone[:3]}:{zone[3:]}"
    )
    try:
        return datetime.fromisoformat(f"{date}T{clock}.{micros}{offset}")
    except ValueError:
        return None


def format_timestamp(moment: datetime) -> str:
    """UTC ISO 8601 with a ``Z``, milliseconds unless the value needs microseconds."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    spec = "milliseconds" if moment.microsecond % 1000 == 0 else "microseconds"
    return moment.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def wire_paths(cls: type, field: "attrs.Attribute[Any]") -> Tuple[Tuple[str, ...], ...]:
    """Where an attribute lives on the wire, as a tuple of key paths (first one is written)."""
    mapping: Mapping[str, Any] = getattr(cls, "__wire__", {})
    spec = mapping.get(field.name, to_camel(field.name))
    specs = (spec,) if isinstance(spec, str) else tuple(spec)
    return tuple(tuple(s.split(".")) for s in specs)


def lookup(obj: Mapping[str, Any], paths: Tuple[Tuple[str, ...], ...]) -> Any:
    """The value at the first path present in ``obj``, else a private missing marker."""
    for path in paths:
        node: Any = obj
        for key in path:
            if not isinstance(node, dict) or key not in node:  # JSON objects are always dicts
                break
            node = node[key]
        else:
            return node
    return _MISSING


def _assign(obj: Dict[str, Any], path: Tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        obj = obj.setdefault(key, {})
    obj[path[-1]] = value


def _strict(kind: type, accept: Tuple[type, ...]) -> Callable[[Any, Any], Any]:
    def structure(value: Any, _: Any) -> Any:
        if isinstance(value, bool) and kind is not bool:
            raise TypeError(f"expected {kind.__name__}, got bool")
        if not isinstance(value, accept):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return kind(value)

    return structure


def _loose_str(value: Any, _: Any) -> str:
    if isinstance(value, (dict, list)):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return "" if value is None else str(value)


def _datetime(value: Any, _: Any) -> datetime:
    parsed = parse_timestamp(value)
    if parsed is None:
        raise ValueError(f"not an ISO 8601 timestamp: {value!r}")
    return parsed


def _field_reader(conv: cattrs.Converter, kind: Any, lenient: bool) -> Callable[[Any], Any]:
    """A function that structures one field's value: direct checks for the common JSON shapes
    (frames are decoded on the reader thread's hot path), cattrs for everything else."""
    if kind is Any:
        return _identity
    if lenient:
        strict = _field_reader(conv, kind, False)

        def lenient_read(value: Any) -> Any:
            try:
                return strict(value)
            except (TypeError, ValueError):
                return None

        return lenient_read
    if typing.get_origin(kind) is Union:
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(options) == 1 and len(typing.get_args(kind)) == 2:
            inner = _field_reader(conv, options[0], False)
            return lambda value: None if value is None else inner(value)
    if kind is str:
        return _exact_str
    if kind is LooseStr:
        return lambda value: value if type(value) is str else _loose_str(value, kind)
    if kind is datetime:
        return lambda value: _datetime(value, datetime)
    if typing.get_origin(kind) is dict and typing.get_args(kind) == (str, Any):
        return _plain_dict
    return lambda value: conv.structure(value, kind)


def _identity(value: Any) -> Any:
    return value


def _exact_str(value: Any) -> str:
    if type(value) is str:
        return value
    raise TypeError(f"expected str, got {type(value).__name__}")


def _plain_dict(value: Any) -> Dict[str, Any]:
    if type(value) is dict:
        return value
    raise TypeError(f"expected an object, got {type(value).__name__}")


def _path_reader(paths: Tuple[Tuple[str, ...], ...]) -> Callable[[Mapping[str, Any]], Any]:
    if len(paths) == 1 and len(paths[0]) == 1:
        key = paths[0][0]
        return lambda obj: obj.get(key, _MISSING)
    if len(paths) == 1 and len(paths[0]) == 2:
        outer, inner = paths[0]

        def read_nested(obj: Mapping[str, Any]) -> Any:
            node = obj.get(outer)
            return node.get(inner, _MISSING) if isinstance(node, dict) else _MISSING

        return read_nested
    return lambda obj: lookup(obj, paths)


def _make_attrs_structure(conv: cattrs.Converter, cls: type) -> Callable[[Any, Any], Any]:
    plan = [
        (
            f.name,
            _path_reader(wire_paths(cls, f)),
            _field_reader(conv, f.type, bool(f.metadata.get(LENIENT))),
        )
        for f in attrs.fields(cls)
        if f.init and f.name != "raw"
    ]
    wants_raw = any(f.name == "raw" and f.init for f in attrs.fields(cls))

    def structure(obj: Any, _: Any) -> Any:
        if not isinstance(obj, dict):
            raise TypeError(f"{cls.__name__}: expected an object, got {type(obj).__name__}")
        values: Dict[str, Any] = {"raw": obj} if wants_raw else {}
        for name, read, convert in plan:
            value = read(obj)
            if value is _MISSING:
                continue
            try:
                values[name] = convert(value)
            except Exception as exc:
                raise ValueError(f"{cls.__name__}.{name}: {_short(exc)}") from exc
        return cls(**values)

    return structure


def _make_attrs_unstructure(conv: cattrs.Converter, cls: type) -> Callable[[Any], Any]:
    fields = [(f, wire_paths(cls, f)[0]) for f in attrs.fields(cls) if f.name != "raw"]

    def unstructure(obj: Any) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        for field, path in fields:
            value = getattr(obj, field.name)
            if value is None and field.default is None and not field.metadata.get(KEEP_NONE):
                continue
            _assign(out, path, conv.unstructure(value))
        return out

    return unstructure


def _short(exc: BaseException) -> str:
    if isinstance(exc, cattrs.BaseValidationError):
        inner = exc.exceptions[0] if exc.exceptions else exc
        return _short(inner) if inner is not exc else str(exc)
    return str(exc) or type(exc).__name__


def make_converter() -> cattrs.Converter:
    """Build a converter with every rule above; the package uses the shared :data:`converter`."""
    conv = cattrs.Converter()
    conv.register_structure_hook(str, _strict(str, (str,)))
    conv.register_structure_hook(int, _strict(int, (int,)))
    conv.register_structure_hook(float, _strict(float, (int, float)))
    conv.register_structure_hook(bool, _strict(bool, (bool,)))
    conv.register_structure_hook(LooseStr, _loose_str)
    conv.register_structure_hook(datetime, _datetime)
    conv.register_unstructure_hook(datetime, format_timestamp)
    conv.register_structure_hook_factory(attrs.has, lambda cls: _make_attrs_structure(conv, cls))
    conv.register_unstructure_hook_factory(
        attrs.has, lambda cls: _make_attrs_unstructure(conv, cls)
    )
    return conv


converter = make_converter()


def structure(obj: Any, cls: "type[T]") -> T:
    """Decode a wire object into ``cls`` with the shared converter."""
    return converter.structure(obj, cls)


def unstructure(obj: Any) -> Any:
    """Encode an attrs object (or anything JSON-like) into wire form with the shared converter."""
    return converter.unstructure(obj)
