"""Fuzzing the reader: hypothesis-made server frames, sent by the emulator to a real Conversation.

Invariants, for every batch: no exception escapes a library thread (pytest turns one into an
error), nothing hangs (each batch ends with a sentinel frame that must arrive), and every frame
the emulator sent is either delivered to the ``"*"`` callbacks as a message or reported as a
:class:`~blackbox_sync.ProtocolError` -- never lost, never both. Wire-level junk (hand-made
WebSocket frames with bad opcodes, reserved bits, lying lengths, invalid UTF-8) may instead end
the connection, but only with a typed error and without the reader's last-resort handler firing.

Every field of every server message type may hold a hostile value: a lone surrogate (sent
escaped, as JSON allows), characters outside the BMP, a value of tens of kilobytes, or one nested
hundreds of levels deep.

CI sends 1,500 frames in a fixed (derandomized) sequence, a few seconds. For a longer, random
run::

    BLACKBOX_FUZZ_FRAMES=200000 BLACKBOX_FUZZ_SEED=random \
        python -m pytest tests/e2e/conversation/test_fuzz_frames.py -s

(``BLACKBOX_FUZZ_SEED=<number>`` replays one seed.)
"""

import json
import logging
import os
import threading
from typing import Any, Callable, Dict, List, Tuple, Union

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import blackbox_sync as bb
from blackbox_sync.testing import AgentContext, Emulator, SendRaw
from blackbox_sync.testing.agents.scripted import Turn
from blackbox_sync.testing.faults import On, RawBytes, ws_frame

FRAMES = int(os.environ.get("BLACKBOX_FUZZ_FRAMES", "1500"))
SEED = os.environ.get("BLACKBOX_FUZZ_SEED", "")
BATCH = 50  # frames per conversation
WIRE_EXAMPLES = max(60, FRAMES // 200)
SENTINEL = "fuzzSentinel"

Frame = Union[str, bytes]


def fuzz_settings(examples: int) -> Callable[[Any], Any]:
    """Derandomized (the same frames every CI run) unless BLACKBOX_FUZZ_SEED is set: a number
    replays that seed, anything else (``random``) draws a new one (hypothesis prints it)."""
    configured = settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=not SEED,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    if SEED.isdigit():
        return lambda test: seed(int(SEED))(configured(test))
    return configured


# --- strategies ----------------------------------------------------------------------------------


def nested(depth: int, inner: Any, as_dict: bool) -> Any:
    value = inner
    for _ in range(depth):
        value = {"k": value} if as_dict else [value]
    return value


# Fixed, so hypothesis draws them cheaply: lone surrogates, non-BMP characters, big values.
HOSTILE_TEXTS = [
    "\ud800",
    "id-\udfff-x",
    "\U0001f600\U0010ffff\U00020000",
    "x" * 70_000,
    "\U0001f4a9" * 5_000,
]
HOSTILE_VALUES = [
    nested(400, "deep", as_dict=False),
    nested(300, "\ud800", as_dict=True),
    ["\U0001f600" * 1000] * 20,
    {f"key{i}": i for i in range(3000)},
]
plain_texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=16)
texts = st.one_of(
    plain_texts,
    plain_texts,
    plain_texts,
    plain_texts,
    st.text(max_size=8),  # lone surrogates among the rest
    st.sampled_from(HOSTILE_TEXTS),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=5,
) | st.sampled_from(HOSTILE_VALUES)
timestamps = st.one_of(
    st.just("2025-06-09T10:00:04Z"),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    json_values,
)
channels = st.one_of(st.none(), texts, json_values)
kinds = st.sampled_from(
    [
        "event",
        "text",
        "websocketToolRequest",
        "toolCall",
        "toolCallResult",
        "sdpInvite",
        "conversationResult",
        "error",
    ]
)


def envelope(kind: str, **fields: Any) -> st.SearchStrategy[Dict[str, Any]]:
    return st.fixed_dictionaries(
        {"type": st.just(kind), **fields},
        optional={"timestamp": timestamps, "channelId": channels},
    )


valid_frames = st.one_of(
    envelope(
        "text",
        content=st.fixed_dictionaries(
            {
                "source": st.one_of(st.sampled_from(["assistant", "user"]), texts),
                "text": texts,
            },
            optional={"type": st.sampled_from(["potential", "final"])},
        ),
    ),
    envelope(
        "event",
        name=st.one_of(st.sampled_from(["connection", "opened", "closed", "failedOpen"]), texts),
        data=st.dictionaries(texts, json_values, max_size=4),
    ),
    envelope(
        "websocketToolRequest",
        content=st.fixed_dictionaries(
            {
                "id": texts,
                "toolName": texts,
                "args": st.dictionaries(texts, json_values, max_size=3),
            }
        ),
    ),
    envelope("toolCall", content=st.dictionaries(texts, json_values, max_size=4)),
    envelope("toolCallResult", data=st.dictionaries(texts, json_values, max_size=4)),
    envelope("sdpInvite", data=st.fixed_dictionaries({"invite": texts})),
    envelope("conversationResult", result=st.dictionaries(texts, json_values, max_size=4)),
    envelope("error", data=st.fixed_dictionaries({"message": json_values})),
    envelope(SENTINEL + "Like", x=json_values),  # unknown types are messages too
)


@st.composite
def mutated_frames(draw: st.DrawFn) -> Dict[str, Any]:
    """A valid frame with keys dropped, values replaced, or the type swapped."""
    frame: Dict[str, Any] = dict(draw(valid_frames))
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["drop", "replace", "retype", "add", "nest"]))
        keys = sorted(frame)
        if action == "drop" and keys:
            frame.pop(draw(st.sampled_from(keys)))
        elif action == "replace" and keys:
            frame[draw(st.sampled_from(keys))] = draw(json_values)
        elif action == "retype":
            frame["type"] = draw(st.one_of(kinds, json_values))
        elif action == "add":
            frame[draw(texts)] = draw(json_values)
        elif action == "nest":
            frame[draw(st.sampled_from(["content", "data", "result"]))] = draw(json_values)
    return frame


def dump(frame: Any, ascii_only: bool) -> str:
    # ensure_ascii=True lets lone surrogates travel as escapes; False sends real UTF-8, which
    # cannot carry them: such a frame goes escaped either way.
    text = json.dumps(frame, ensure_ascii=ascii_only, allow_nan=True)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(frame, ensure_ascii=True, allow_nan=True)
    return text


junk_frames = st.one_of(
    plain_texts,  # mostly not JSON at all
    st.binary(max_size=64),  # binary frames
    json_values.map(json.dumps),  # JSON, but rarely an object
    st.integers(1_000, 5_000).map(lambda n: "[" * n + "]" * n),  # deep nesting
    st.sampled_from(
        [
            '{"type": 1e999999}',
            '{"type": "text", "type": "event"}',
            '{"type":"text","content":{"source":"assistant","text":"\\ud800"}}',
            "\ufeff{}",
            "{" * 3000,
            "",
        ]
    ),
)


@st.composite
def server_frames(draw: st.DrawFn) -> Frame:
    """One server frame as it goes on the wire: valid, mutated or junk."""
    kind = draw(st.sampled_from(["valid", "valid", "mutated", "mutated", "junk"]))
    if kind == "junk":
        frame: Frame = draw(junk_frames)
        return frame
    source = draw(valid_frames if kind == "valid" else mutated_frames())
    return dump(source, draw(st.booleans()))


batches = st.lists(server_frames(), min_size=BATCH, max_size=BATCH)


# --- the agent that plays each batch -------------------------------------------------------------


class BatchAgent:
    """Answers the client's "go" with the batch of the moment, then a sentinel frame."""

    echo = False
    tool_timeout = 0.5
    announce_tool_calls = False

    def __init__(self) -> None:
        self.batch: List[Frame] = []

    def greet(self, context: AgentContext) -> Turn:
        return
        yield

    def respond(self, text: str, context: AgentContext) -> Turn:
        for frame in self.batch:
            yield SendRaw(frame)
        yield SendRaw({"type": SENTINEL})


class Tally:
    """What one conversation received, by route."""

    def __init__(self, conv: bb.Conversation) -> None:
        self.raw = 0
        self.messages = 0
        self.sentinel = threading.Event()
        self.closed = threading.Event()
        self.either = threading.Event()
        conv.on_frame_received(self._raw)
        conv.on("*", self._message)
        conv.on_close(self._closed)

    def _closed(self, code: Any, reason: str) -> None:
        self.closed.set()
        self.either.set()

    def _raw(self, payload: Any) -> None:
        self.raw += 1

    def _message(self, message: bb.Message) -> None:
        self.messages += 1
        if isinstance(message, bb.UnknownMessage) and message.type == SENTINEL:
            self.sentinel.set()
            self.either.set()


def play(emu: Emulator, agent: BatchAgent, **options: Any) -> Tuple[bb.Conversation, Tally]:
    """One conversation: connect, say "go", wait for the sentinel (or the end), close."""
    conv = bb.Conversation(
        token=emu.token, base_url=emu.base_url, close_timeout=1.0, tool_timeout=0.5, **options
    )
    tally = Tally(conv)
    conv.connect(timeout=10)
    conv.send("go")
    assert tally.either.wait(20), "neither the sentinel nor the end arrived: the reader hangs"
    conv.close()
    return conv, tally


@pytest.fixture
def fuzz_emulator() -> Any:
    agent = BatchAgent()
    with Emulator(agent=agent) as emu:
        yield emu, agent


def test_every_frame_is_delivered_or_reported(
    fuzz_emulator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    emu, agent = fuzz_emulator
    caplog.set_level(logging.ERROR, logger="blackbox_sync")
    totals = {"frames": 0, "messages": 0, "protocol_errors": 0}

    @fuzz_settings(max(1, FRAMES // BATCH))
    @given(batch=batches)
    def run(batch: List[Frame]) -> None:
        agent.batch = batch
        conv, tally = play(emu, agent)
        assert tally.sentinel.is_set(), "valid WebSocket frames must never end the connection"
        record = emu.conversations[-1]
        sent = len(record.server_frames)
        assert tally.raw == sent  # the connection event, the batch and the sentinel
        protocol_errors = sum(isinstance(e, bb.ProtocolError) for e in conv.errors)
        assert tally.messages + protocol_errors == tally.raw
        assert not [e for e in conv.errors if not isinstance(e, bb.BlackBoxError)]
        totals["frames"] += len(batch)
        totals["messages"] += tally.messages
        totals["protocol_errors"] += protocol_errors
        emu.reset()  # keep the emulator's journal small over thousands of frames

    run()
    assert totals["frames"] >= FRAMES * 0.9, totals
    assert not [r for r in caplog.records if "reader thread failed" in r.getMessage()]
    print(f"\nfuzz: {totals}")


# --- wire-level junk -----------------------------------------------------------------------------


@st.composite
def wire_junk(draw: st.DrawFn) -> bytes:
    """A few hand-made WebSocket frames: well-formed ones (pings, pongs, binary, fragmented
    text) mixed with broken ones (any opcode, reserved bits, lying lengths, bad UTF-8)."""
    parts: List[bytes] = []
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            parts.extend(draw(well_formed))
            continue
        payload = draw(
            st.one_of(
                st.binary(max_size=200),
                st.just(b"\xff\xfe\xfd"),
                st.just(b'{"type":"text","content":{"source":"assistant","text":"\xc3"}}'),
                st.just(b"\x03\xe8bye"),  # a close payload
                st.just(b"\x03"),  # a one-byte close payload (invalid)
            )
        )
        opcode = draw(st.sampled_from([0x0, 0x1, 0x2, 0x3, 0x7, 0x8, 0x9, 0xA, 0xB, 0xF]))
        fin = draw(st.booleans())
        rsv = draw(st.sampled_from([0, 0, 0, 1, 2, 4, 7]))
        lie = draw(st.one_of(st.none(), st.integers(0, 400)))
        parts.append(ws_frame(payload, opcode, fin=fin, rsv=rsv, length=lie))
    return b"".join(parts)


_json = b'{"type":"text","content":{"source":"assistant","text":"h\xc3\xa9"}}'
well_formed = st.one_of(
    st.binary(max_size=125).map(lambda p: [ws_frame(p, 0x9)]),  # ping
    st.binary(max_size=125).map(lambda p: [ws_frame(p, 0xA)]),  # unsolicited pong
    st.binary(max_size=300).map(lambda p: [ws_frame(p, 0x2)]),  # binary message
    st.just([ws_frame(_json[:20], 0x1, fin=False), ws_frame(_json[20:], 0x0)]),  # fragments
    st.just(  # a ping between two fragments, as the RFC allows
        [ws_frame(_json[:9], 0x1, fin=False), ws_frame(b"p", 0x9), ws_frame(_json[9:], 0x0)]
    ),
)


def test_wire_level_junk_ends_cleanly_or_is_survived(
    fuzz_emulator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    emu, agent = fuzz_emulator
    caplog.set_level(logging.ERROR, logger="blackbox_sync")
    outcomes: Dict[str, int] = {}
    agent.batch = []

    @fuzz_settings(WIRE_EXAMPLES)
    @given(junk=wire_junk())
    def run(junk: bytes) -> None:
        emu.arm_fault(RawBytes(junk, when=On("incomingChatMessage", "client")))
        # A frame whose header promises more bytes than come swallows what follows, the
        # sentinel included: only keepalive can tell, so it runs fast here.
        conv, tally = play(emu, agent, ping_interval=0.2, ping_timeout=0.5)
        if tally.sentinel.is_set():
            outcome = "survived"
        else:
            assert conv.closed
            lost = [e for e in conv.errors if isinstance(e, bb.ConnectionClosedError)]
            assert lost or conv.close_code is not None, "ended without a typed reason"
            outcome = f"closed {conv.close_code}"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        emu.reset()

    run()
    assert not [r for r in caplog.records if "reader thread failed" in r.getMessage()]
    print(f"\nwire junk: {outcomes}")


def test_a_frame_that_is_only_just_too_big_is_refused_before_delivery(
    fuzz_emulator: Any,
) -> None:
    emu, agent = fuzz_emulator
    big = json.dumps({"type": "text", "content": {"source": "assistant", "text": "x" * 5000}})
    agent.batch = [big]
    conv, tally = play(emu, agent, max_message_size=len(big.encode()) - 1)
    assert not tally.sentinel.is_set()
    assert conv.close_code == 1009
    assert tally.messages == 1  # the connection event only


def test_no_frames_at_all(fuzz_emulator: Any) -> None:
    emu, agent = fuzz_emulator
    agent.batch = []
    _, tally = play(emu, agent)
    assert (tally.raw, tally.messages) == (2, 2)
