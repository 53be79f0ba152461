"""Applies the fault catalogue (:mod:`.faults`) to the emulator's connections.

The emulator owns one :class:`FaultEngine`. Test threads arm and disarm faults and read the
firings; the WebSocket sessions call the hooks on the loop thread: :meth:`FaultEngine.handshake`
before the upgrade is answered, :meth:`~FaultEngine.opened` once it is, :meth:`~FaultEngine.
client_frame` for each frame received and :meth:`~FaultEngine.outgoing` for each frame about to be
sent. Shared state is guarded by the emulator's lock, never held across an ``await``.
"""

import asyncio
import json
import logging
import random
import threading
from typing import Any, Dict, List, Optional, Protocol, Tuple, Union

import attrs
from aiohttp import web

from blackbox_sync.testing.faults.catalogue import (
    HANDSHAKE,
    MALFORMATIONS,
    OPEN,
    Close,
    ConnectionFault,
    Delay,
    Drop,
    Duplicate,
    ErrorFrame,
    FailedOpen,
    Fault,
    FaultFiring,
    Inject,
    Malform,
    On,
    Oversize,
    RawBytes,
    Refuse,
    Reorder,
    Replace,
    Stall,
    error_frame,
    frame_dict,
    sample_seconds,
    ws_frame,
)
from blackbox_sync.testing.records import ConversationRecord, parse_frame


class FaultTarget(Protocol):
    """What the engine needs of a connection: a
    :class:`~blackbox_sync.testing.ws.session.WsSession` (a protocol, so that this module does
    not import the session back)."""

    stalled: bool
    """Set by a ``Stall`` fault: nothing is answered or sent any more."""

    @property
    def connection_id(self) -> int: ...

    @property
    def record(self) -> Optional[ConversationRecord]: ...

    @property
    def request(self) -> web.Request: ...

    @property
    def ws(self) -> web.WebSocketResponse: ...

    @property
    def ending(self) -> "Optional[asyncio.Future[None]]": ...

    @property
    def dropped(self) -> bool: ...

    @property
    def send_lock(self) -> asyncio.Lock: ...

    async def send_payload(
        self, payload: Union[str, bytes], data: Any, kind: Optional[str]
    ) -> bool: ...

    def record_frame(
        self, direction: str, payload: Union[str, bytes], data: Any, kind: Optional[str]
    ) -> None: ...

    def end(
        self,
        ended_by: str,
        *,
        status: str = ...,
        send_result: bool = ...,
        close_code: int = ...,
        close_reason: str = ...,
        drop: bool = ...,
    ) -> None: ...


log = logging.getLogger("blackbox_sync.testing.faults")

CLOSE_ABNORMAL = 1006
# How often a stalled handshake or a stalled, closing connection looks whether its peer left.
_POLL = 0.02
# Depth of the nested arrays a "deep_nesting" malformation sends (past json's recursion limit).
_DEPTH = 100_000


@attrs.frozen
class Outgoing:
    """One frame to write: ``payload`` as a text (``str``) or binary (``bytes``) frame; with
    ``raw`` the bytes go on the TCP stream as they are (hand-made frames)."""

    payload: Union[str, bytes]
    data: Any = None
    kind: Optional[str] = None
    raw: bool = False

    @classmethod
    def of(cls, frame: Any) -> "Outgoing":
        """A frame given as a dict (sent as JSON), text or bytes (a binary frame)."""
        if isinstance(frame, dict):
            frame = _dumps(frame)
        data, kind = parse_frame(frame)
        return cls(frame, data, kind)


@attrs.define
class Plan:
    """What :meth:`FaultEngine.outgoing` decided: the frames to write, then maybe an ending."""

    frames: List[Outgoing]
    then: Optional[Fault] = None


class ArmedFault:
    """An armed fault: how often it fired, and :meth:`disarm`. Returned by ``arm_fault``."""

    def __init__(self, engine: "FaultEngine", fault: Union[Fault, ConnectionFault]) -> None:
        self.fault = fault
        self.fired = 0
        self._engine = engine
        self._counts: Dict[int, int] = {}  # connection id -> matching frames since arming
        self._legacy: Dict[int, List[int]] = {}  # connection id -> [sent, received] since arming

    def __repr__(self) -> str:
        return f"<ArmedFault {self.fault!r} fired={self.fired}>"

    def count_frame(self, connection_id: int) -> int:
        """Count one more matching frame on ``connection_id``; returns the count so far."""
        count = self._counts[connection_id] = self._counts.get(connection_id, 0) + 1
        return count

    def count_direction(self, connection_id: int, direction: str) -> Tuple[int, int]:
        """Count one frame ``direction`` (``"server"`` or ``"client"``) on ``connection_id``;
        returns the (sent, received) counts so far."""
        counts = self._legacy.setdefault(connection_id, [0, 0])
        counts[0 if direction == "server" else 1] += 1
        return counts[0], counts[1]

    def forget(self, connection_id: int) -> None:
        """Drop the counts of a closed connection."""
        self._counts.pop(connection_id, None)
        self._legacy.pop(connection_id, None)

    @property
    def spent(self) -> bool:
        """True once it fired ``times`` times (and so is no longer armed)."""
        times = self.fault.times if isinstance(self.fault, Fault) else 1
        return times is not None and self.fired >= times

    def disarm(self) -> None:
        """Stop it from firing again."""
        self._engine.disarm(self)


class FaultEngine:
    """Armed faults, the seeded RNG, the firing log and per-connection fault state."""

    def __init__(self, changed: threading.Condition, seed: int) -> None:
        self._changed = changed
        self._rng = random.Random(f"blackbox-emulator-faults:{seed}")
        self._armed: List[ArmedFault] = []
        self._firings: List[FaultFiring] = []
        self._held: Dict[int, Outgoing] = {}  # connection id -> frame held back by Reorder
        self._released = False

    # --- test threads ----------------------------------------------------------------------------

    def arm(self, fault: Any) -> ArmedFault:
        """Arm ``fault`` (a catalogue :class:`~.faults.Fault` or a :class:`ConnectionFault`)."""
        if not isinstance(fault, (Fault, ConnectionFault)):
            raise TypeError(f"not a fault: {fault!r}")
        armed = ArmedFault(self, fault)
        with self._changed:
            self._armed.append(armed)
        return armed

    def disarm(self, armed: Optional[ArmedFault] = None) -> None:
        """Disarm one fault, or all of them."""
        with self._changed:
            self._armed = [] if armed is None else [a for a in self._armed if a is not armed]

    @property
    def armed(self) -> List[ArmedFault]:
        """The faults still armed."""
        with self._changed:
            return list(self._armed)

    @property
    def firings(self) -> List[FaultFiring]:
        """Every firing so far, oldest first."""
        with self._changed:
            return list(self._firings)

    def wait_for_firing(
        self, kind: Optional[str] = None, timeout: float = 5.0, count: int = 1
    ) -> FaultFiring:
        """Wait until ``count`` firings (of fault class ``kind``) happened; return the last."""

        def found() -> Optional[FaultFiring]:
            hits = [f for f in self._firings if kind in (None, f.kind)]
            return hits[count - 1] if len(hits) >= count else None

        with self._changed:
            firing = self._changed.wait_for(found, timeout)
        if firing is None:
            what = kind or "(any)"
            raise TimeoutError(f"fault {what} did not fire {count} time(s) in {timeout} s")
        return firing

    def release(self) -> None:
        """Let stalled handshakes go (the emulator is stopping or resetting)."""
        self._released = True

    # --- loop thread: hooks ----------------------------------------------------------------------

    async def handshake(self, session: FaultTarget) -> Optional[web.StreamResponse]:
        """Before the upgrade: delay it, or answer something else (returned) instead."""
        for fault in self._strikes(session, HANDSHAKE, None, None):
            if isinstance(fault, Delay):
                await asyncio.sleep(self._seconds(fault))
            elif isinstance(fault, Refuse) and fault.status is not None:
                return web.Response(status=fault.status, text="refused by an emulator fault")
            elif isinstance(fault, Stall):
                await self._until_gone(session)
                _abort(session)
                return web.Response(status=503)
            elif isinstance(fault, (Refuse, Drop, Close)):
                _abort(session)
                return web.Response(status=503)
        return None

    async def opened(self, session: FaultTarget) -> None:
        """After the upgrade, before the first frame is read."""
        for fault in self._strikes(session, OPEN, None, None):
            if await self._act(session, fault):
                return

    async def client_frame(self, session: FaultTarget, kind: Optional[str]) -> bool:
        """A client frame was recorded; True when a fault ended the connection instead of it
        being acted on."""
        for fault in self._strikes(session, "client", kind, None):
            if await self._act(session, fault):
                return True
        return False

    async def outgoing(
        self, session: FaultTarget, payload: Union[str, bytes], data: Any, kind: Optional[str]
    ) -> Plan:
        """A server frame is about to be written: what to write instead, and what follows."""
        main: Optional[Outgoing] = Outgoing(payload, data, kind)
        before: List[Outgoing] = []
        after: List[Outgoing] = []
        copies = 0
        then: Optional[Fault] = None
        held = self._held.pop(session.connection_id, None)
        for fault in self._strikes(session, "server", kind, data):
            if isinstance(fault, Delay):
                await asyncio.sleep(self._seconds(fault))
            elif isinstance(fault, Malform) and main is not None:
                main = malform(main, fault.how)
            elif isinstance(fault, Oversize) and main is not None:
                main = oversize(main, fault.size)
            elif isinstance(fault, Replace):
                main = Outgoing.of(fault.frame)
            elif isinstance(fault, Duplicate):
                copies += fault.copies
            elif isinstance(fault, Reorder) and main is not None:
                self._held[session.connection_id], main = main, None
            elif isinstance(fault, Inject):
                (before if fault.before else after).extend(Outgoing.of(f) for f in fault.frames)
            elif isinstance(fault, RawBytes):
                after.append(Outgoing(fault.data, raw=True))
            elif isinstance(fault, ErrorFrame):
                after.append(Outgoing.of(error_frame(fault.message)))
                if fault.close_code is not None and then is None:
                    then = Close(code=fault.close_code)
            elif isinstance(fault, FailedOpen):
                main = Outgoing.of(_failed_open(fault.reason))
                if fault.close_code is not None and then is None:
                    then = Close(code=fault.close_code)
            elif fault.ENDS_CONNECTION and then is None:
                then = fault
        frames = before + ([main] * (1 + copies) if main is not None else [])
        frames += ([held] if held is not None else []) + after
        return Plan(frames, then)

    async def write(self, session: FaultTarget, frame: Outgoing) -> bool:
        """Record ``frame`` and write it (the caller holds the session's send lock); False when
        the connection is gone."""
        if session.dropped or session.ws.closed:
            return False
        # Filed before the write: whatever a client has received is already in the records.
        session.record_frame("server", frame.payload, frame.data, frame.kind)
        try:
            if frame.raw:
                transport = session.request.transport
                if transport is None or not isinstance(frame.payload, bytes):
                    return False
                transport.write(frame.payload)
            elif isinstance(frame.payload, bytes):
                await session.ws.send_bytes(frame.payload)
            else:
                await session.ws.send_str(frame.payload)
        except (ConnectionError, RuntimeError) as exc:  # the peer went away meanwhile
            log.debug("connection %d: frame not sent: %s", session.connection_id, exc)
            return False
        return True

    def end_after_send(self, session: FaultTarget, fault: Fault) -> None:
        """Apply an ending fault that :meth:`outgoing` returned, once its frame is out."""
        _end(session, fault)

    def connection_closed(self, connection_id: int) -> None:
        """Forget a closed connection's state."""
        with self._changed:
            self._held.pop(connection_id, None)
            for armed in self._armed:
                armed.forget(connection_id)

    # --- internals -------------------------------------------------------------------------------

    async def _act(self, session: FaultTarget, fault: Fault) -> bool:
        """Apply a fault struck at OPEN or by a client frame; True when the connection ended."""
        if isinstance(fault, Delay):
            await asyncio.sleep(self._seconds(fault))
        elif isinstance(fault, (Inject, ErrorFrame, RawBytes, FailedOpen)):
            frames: List[Outgoing] = []
            if isinstance(fault, Inject):
                frames = [Outgoing.of(f) for f in fault.frames]
            elif isinstance(fault, ErrorFrame):
                frames = [Outgoing.of(error_frame(fault.message))]
            elif isinstance(fault, FailedOpen):
                frames = [Outgoing.of(_failed_open(fault.reason))]
            else:
                frames = [Outgoing(fault.data, raw=True)]
            for frame in frames:
                if frame.raw:
                    async with session.send_lock:
                        await self.write(session, frame)
                else:
                    await session.send_payload(frame.payload, frame.data, frame.kind)
            code = fault.close_code if isinstance(fault, (ErrorFrame, FailedOpen)) else None
            if code is not None:
                _end(session, Close(code=code))
                return True
        elif fault.ENDS_CONNECTION:
            _end(session, fault)
            return True
        return False

    def _strikes(
        self, session: FaultTarget, at: str, kind: Optional[str], data: Any
    ) -> List[Fault]:
        """The catalogue faults striking now (in arming order), after counting this moment;
        a legacy :class:`ConnectionFault` that strikes becomes a :class:`Drop`. Random choices
        are made here, recorded in the firing, and fixed in the returned fault (a
        :class:`Delay` with its drawn seconds, a :class:`Malform` with its drawn way)."""
        cid = session.connection_id
        record = session.record
        struck: List[Tuple[ArmedFault, Fault]] = []
        with self._changed:
            for armed in list(self._armed):
                fault = armed.fault
                if not isinstance(fault, Fault):
                    if at in ("server", "client") and self._legacy_strikes(armed, cid, at):
                        struck.append((armed, Drop()))
                    continue
                when = fault.when
                if isinstance(when, On):
                    if at not in ("server", "client") or not when.matches(at, kind):
                        continue
                    count = armed.count_frame(cid)
                    if count < when.nth:
                        continue
                elif when != at:
                    continue
                if fault.probability < 1.0 and self._rng.random() >= fault.probability:
                    continue
                struck.append((armed, fault))
            for index, (armed, fault) in enumerate(struck):
                armed.fired += 1
                if armed.spent:
                    self._armed = [a for a in self._armed if a is not armed]
                fault, detail = self._resolve(fault)
                struck[index] = (armed, fault)
                self._firings.append(
                    FaultFiring(
                        fault=armed.fault,
                        kind=type(armed.fault).__name__,
                        connection_id=cid,
                        record_id=record.record_id if record is not None else None,
                        frame_type=kind,
                        detail=detail,
                    )
                )
            if struck:
                self._changed.notify_all()
        for armed, _ in struck:
            log.debug("connection %d: fault %r strikes at %s %s", cid, armed.fault, at, kind)
        return [fault for _, fault in struck]

    def _resolve(self, fault: Fault) -> Tuple[Fault, str]:
        """``fault`` with its random parts drawn (the lock is held), and what was drawn."""
        if isinstance(fault, Delay):
            seconds = max(0.0, sample_seconds(fault.seconds, self._rng))
            return attrs.evolve(fault, seconds=seconds), f"{seconds:.3f} s"
        if isinstance(fault, Malform):
            how = fault.how if fault.how != "random" else self._rng.choice(MALFORMATIONS)
            return attrs.evolve(fault, how=how), how
        if isinstance(fault, Close):
            return fault, f"code {fault.code}"
        if isinstance(fault, Refuse):
            return fault, "TCP cut" if fault.status is None else f"HTTP {fault.status}"
        return fault, ""

    @staticmethod
    def _legacy_strikes(armed: ArmedFault, cid: int, direction: str) -> bool:
        sent, received = armed.count_direction(cid, direction)
        fault = armed.fault
        return not isinstance(fault, Fault) and fault.should_drop(sent, received)

    @staticmethod
    def _seconds(fault: Delay) -> float:
        # _resolve() drew the seconds already: a number now, whatever the fault was armed with.
        return float(fault.seconds) if isinstance(fault.seconds, (int, float)) else 0.0

    async def _until_gone(self, session: FaultTarget) -> None:
        # Polling: aiohttp tells a handler nothing when its peer leaves before the upgrade.
        while not self._released:
            transport = session.request.transport
            if transport is None or transport.is_closing():
                return
            await asyncio.sleep(_POLL)


async def until_transport_closed(session: FaultTarget) -> None:
    """Wait until the peer has gone (a stalled connection answers nothing, not even a close)."""
    while not session.ending:
        transport = session.request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(_POLL)


def _failed_open(reason: str) -> Dict[str, Any]:
    return frame_dict("event", name="failedOpen", data={"reason": reason})


def _abort(session: FaultTarget) -> None:
    transport = session.request.transport
    if transport is not None:
        transport.abort()


def _end(session: FaultTarget, fault: Fault) -> None:
    if isinstance(fault, Stall):
        session.stalled = True
    elif isinstance(fault, Close) and fault.code != CLOSE_ABNORMAL:
        session.end(
            "fault",
            status="Failed",
            send_result=False,
            close_code=fault.code,
            close_reason=fault.reason,
        )
    else:  # Drop, Refuse past the handshake, Close(1006)
        session.end("connection_dropped", status="Failed", send_result=False, drop=True)


# --- frame surgery -----------------------------------------------------------------------------


def _text(out: Outgoing) -> str:
    return out.payload if isinstance(out.payload, str) else out.payload.decode("utf-8", "replace")


def malform(out: Outgoing, how: str) -> Outgoing:
    """``out`` broken in the way ``how`` names (one of :data:`~.faults.MALFORMATIONS`)."""
    text = _text(out)
    body: Dict[str, Any] = dict(out.data) if isinstance(out.data, dict) else {"type": out.kind}
    if how == "invalid_json":
        return Outgoing(text[: max(1, len(text) // 2)])
    if how == "binary":
        return Outgoing(text.encode("utf-8"))
    if how == "invalid_utf8":
        return Outgoing(ws_frame(b"\xff\xfe" + text.encode("utf-8")), raw=True)
    if how == "deep_nesting":
        nested = "[" * _DEPTH + "]" * _DEPTH
        return Outgoing(f'{{"type":{json.dumps(out.kind)},"content":{nested}}}', None, out.kind)
    if how == "not_object":
        return Outgoing.of(json.dumps([body]))
    if how == "no_type":
        body.pop("type", None)
    elif how == "wrong_type":
        body["type"] = 42
    elif how == "unknown_type":
        body["type"] = f"x-{out.kind}"
    elif how == "missing_payload":
        for key in ("content", "data", "name", "result"):
            body.pop(key, None)
    elif how == "wrong_payload":
        body.update(content=12345, data="not an object", name=["not", "a", "name"], result=7)
    elif how == "nan":
        body["content"] = {"source": "assistant", "text": float("nan"), "score": float("inf")}
    else:
        raise ValueError(f"unknown malformation {how!r}")
    return Outgoing.of(body)


def oversize(out: Outgoing, size: int) -> Outgoing:
    """``out`` padded to ``size`` UTF-8 bytes: its ``content.text`` when it has one."""
    if not isinstance(out.data, dict):
        return out
    body: Dict[str, Any] = out.data
    content = body.get("content")

    def padded(pad: str) -> Dict[str, Any]:
        if isinstance(content, dict) and isinstance(content.get("text"), str):
            return {**body, "content": {**content, "text": content["text"] + pad}}
        return {**body, "padding": pad}

    base = len(_dumps(padded("")).encode("utf-8"))
    return out if base >= size else Outgoing.of(padded("x" * (size - base)))


def _dumps(frame: Any) -> str:
    return json.dumps(frame, ensure_ascii=False, allow_nan=True)
