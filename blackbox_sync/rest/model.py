"""The base of every REST and webhook model, and the lossless encoder used by updates.

Models decode through the shared converter (:mod:`blackbox_sync.protocol.codec`): camelCase on
the wire, unknown fields tolerated and kept whole in ``raw``. Enums are plain strings
(``LooseStr``) so a status this version does not know still decodes; the known values are
listed as constants.
"""

import copy
from typing import Any, ClassVar, Dict, Mapping, Tuple, Type, TypeVar, Union

import attrs

from blackbox_sync.errors import ProtocolError
from blackbox_sync.protocol.codec import converter, wire_paths

Wire = Mapping[str, Union[str, Tuple[str, ...]]]
M = TypeVar("M", bound="Model")


@attrs.define
class Model:
    """A REST object. ``raw`` is the JSON object as the service sent it, unknown fields included."""

    __wire__: ClassVar[Wire] = {}

    raw: Dict[str, Any] = attrs.field(factory=dict, kw_only=True, eq=False, repr=False)

    def to_wire(self) -> Dict[str, Any]:
        """The JSON object for this model: ``raw`` with the modelled attributes written over it.

        Fields this version does not model travel back untouched, which is what a
        GET-modify-PUT of a large object (an agent's ``config``) needs. An attribute you set to
        ``None`` goes out as ``null`` when the service had sent a value for it (that is how a
        PUT clears it); one that was absent and is still ``None`` stays absent.
        """
        wire: Dict[str, Any] = _wire_of(self)
        return wire


C = TypeVar("C", bound=type)


def snake_case(cls: C) -> C:
    """Class decorator: the wire names are the attribute names (text-chat and chats endpoints)."""
    names = {f.name: f.name for f in attrs.fields(cls) if f.name != "raw"}
    # setattr: mypy cannot know that the decorated class is a Model with a __wire__.
    setattr(cls, "__wire__", {**names, **cls.__dict__.get("__wire__", {})})  # noqa: B010
    return cls


def decode(data: Any, cls: Type[M], what: str) -> M:
    """Structure ``data`` into ``cls``; a shape we cannot read becomes a :class:`ProtocolError`."""
    try:
        return converter.structure(data, cls)
    except Exception as exc:  # cattrs raises a zoo of types; the caller only needs one
        raise ProtocolError(f"unexpected response for {what}: {_reason(exc)}") from None


def decode_list(data: Any, cls: Type[M], what: str) -> "list[M]":
    """Structure a JSON array of ``cls`` objects."""
    if not isinstance(data, list):
        raise ProtocolError(f"unexpected response for {what}: expected an array")
    return [decode(item, cls, what) for item in data]


def deep_merge(base: Dict[str, Any], patch: Mapping[str, Any]) -> Dict[str, Any]:
    """``base`` updated by ``patch`` in place: nested objects merge, everything else replaces."""
    for key, value in patch.items():
        current = base.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            deep_merge(current, value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _wire_of(value: Any) -> Any:
    if isinstance(value, Model):
        out: Dict[str, Any] = copy.deepcopy(value.raw)
        for field in attrs.fields(type(value)):
            if field.name == "raw":
                continue
            item = getattr(value, field.name)
            paths = wire_paths(type(value), field)
            if item is None and field.default is None:
                _clear(out, paths)
                continue
            _assign(out, paths[0], _wire_of(item))
        return out
    if isinstance(value, (list, tuple)):
        return [_wire_of(v) for v in value]
    if isinstance(value, dict):
        return {k: _wire_of(v) for k, v in value.items()}
    return converter.unstructure(value)


def _clear(obj: Dict[str, Any], paths: Tuple[Tuple[str, ...], ...]) -> None:
    """Write ``null`` where the service sent a value for an attribute that is now ``None``.

    Decoding turns every non-null wire value into a non-``None`` attribute, so ``None`` over a
    non-null ``raw`` value can only mean the caller cleared it. A field the service did not send
    (or sent as null) stays as it was: an untouched ``None`` changes nothing on the server. Null
    rather than leaving the key out, because a PUT may keep a missing key's old value (the
    emulator does, and the docs are not clear that the live service does not).
    """
    for path in paths:
        node: Any = obj
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            _assign(obj, path, None)


def _assign(obj: Dict[str, Any], path: Tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        nxt = obj.get(key)
        if not isinstance(nxt, dict):
            nxt = obj[key] = {}
        obj = nxt
    obj[path[-1]] = value


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "…"
