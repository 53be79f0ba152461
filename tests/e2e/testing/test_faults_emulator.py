"""The emulator's fault catalogue, frame by frame, seen through a bare WebSocket client."""

import json
import math
import threading
from typing import Any, Callable, Dict, Iterator, List

import pytest
import websocket

from blackbox_sync.testing import DropAfter, Emulator, ScriptedAgent
from blackbox_sync.testing.faults import (
    DOCUMENTED_ERRORS,
    HANDSHAKE,
    MALFORMATIONS,
    OPEN,
    Close,
    Delay,
    Drop,
    Duplicate,
    ErrorFrame,
    FailedOpen,
    Inject,
    LogNormal,
    Malform,
    On,
    Oversize,
    RawBytes,
    Refuse,
    Reorder,
    Replace,
    Stall,
    Uniform,
    close_after_init,
    close_before_init,
    ws_frame,
)
from blackbox_sync.testing.ws.wire import WireClient, WireClosed


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(ScriptedAgent(default=["one", "two", "three"], echo=False), seed=7) as emulator:
        yield emulator


def opened(emu: Emulator) -> WireClient:
    """A client past ``initialize`` and the ``connection`` event."""
    client = WireClient(emu.ws_url(), timeout=5)
    client.initialize()
    assert client.recv_type("event")["name"] == "connection"
    return client


def texts(frames: List[Any]) -> List[Any]:
    return [f["content"]["text"] for f in frames if isinstance(f, dict) and f.get("type") == "text"]


class TestConnectionFaults:
    def test_refuse_with_an_http_status(self, emu: Emulator) -> None:
        emu.arm_fault(Refuse(503))
        with pytest.raises(websocket.WebSocketBadStatusException) as info:
            WireClient(emu.ws_url())
        assert info.value.status_code == 503
        (firing,) = emu.fault_firings
        assert (firing.kind, firing.record_id, firing.frame_type) == ("Refuse", None, None)
        with opened(emu):  # spent: the next connection is served
            pass

    def test_refuse_by_cutting_tcp(self, emu: Emulator) -> None:
        emu.arm_fault(Refuse(None))
        with pytest.raises((websocket.WebSocketException, OSError)):
            WireClient(emu.ws_url())
        assert emu.wait_for_fault("Refuse").connection_id == 1

    def test_close_before_initialize(self, emu: Emulator) -> None:
        emu.arm_fault(close_before_init(4000, "go away"))
        with WireClient(emu.ws_url()) as client:
            assert client.recv_until_closed() == []
            assert client.closed is not None
            assert (client.closed.code, client.closed.reason) == (4000, "go away")
        assert emu.conversations == []

    @pytest.mark.parametrize("before_connection", [True, False])
    def test_close_after_initialize(self, emu: Emulator, before_connection: bool) -> None:
        emu.arm_fault(close_after_init(1011, before_connection=before_connection))
        with WireClient(emu.ws_url()) as client:
            client.initialize()
            frames = client.recv_until_closed()
            assert client.closed is not None
            assert client.closed.code == 1011
        assert [f["name"] for f in frames] == ([] if before_connection else ["connection"])
        record = emu.wait_for_conversation_end()
        assert (record.status, record.ended_by, record.close_code) == ("Failed", "fault", 1011)

    @pytest.mark.parametrize("code", [1000, 1007, 1011, 4001, 4999])
    def test_close_mid_turn_with_a_chosen_code(self, emu: Emulator, code: int) -> None:
        with opened(emu) as client:
            emu.arm_fault(Close(code, "chosen", when=On("text", nth=2)))
            client.chat("hi")
            assert texts(client.recv_until_closed()) == ["one", "two"]
            assert client.closed is not None
            assert (client.closed.code, client.closed.reason) == (code, "chosen")

    def test_close_1006_drops_without_a_close_frame(self, emu: Emulator) -> None:
        with opened(emu) as client:
            emu.arm_fault(Close(1006, when="text"))
            client.chat("hi")
            assert texts(client.recv_until_closed()) == ["one"]
            assert client.closed is not None
            assert client.closed.code == 1006

    def test_drop_on_a_client_frame_type(self, emu: Emulator) -> None:
        with opened(emu) as client:
            emu.arm_fault(Drop(when=On("incomingChatMessage", "client", nth=2)))
            client.chat("first")
            assert texts([client.recv() for _ in range(3)]) == ["one", "two", "three"]
            client.chat("second")
            assert client.recv_until_closed() == []
            assert client.closed is not None
            assert client.closed.code == 1006
        assert emu.frames[-1]["content"] == "second"

    def test_stall_answers_nothing_not_even_pings(self, emu: Emulator) -> None:
        with opened(emu) as client:
            emu.arm_fault(Stall(when=On("text")))
            client.chat("hi")
            assert texts([client.recv()]) == ["one"]
            client._ws.ping(b"anyone?")
            with pytest.raises(TimeoutError):
                client.recv(timeout=0.3)  # neither "two" nor a pong
        record = emu.wait_for_conversation_end()  # the client left: the session ends anyway
        assert record.ended_by == "client_disconnect"

    def test_a_stalled_handshake_is_let_go_when_the_client_leaves(self, emu: Emulator) -> None:
        emu.arm_fault(Stall(when=HANDSHAKE))
        with pytest.raises(websocket.WebSocketTimeoutException):
            WireClient(emu.ws_url(), timeout=0.3)
        emu.wait_for_fault("Stall")
        with opened(emu):
            pass

    def test_the_emulator_stops_despite_a_stalled_handshake(self) -> None:
        emu = Emulator(ScriptedAgent()).start()
        emu.arm_fault(Stall(when=HANDSHAKE))
        sock = websocket.WebSocket()
        try:
            sock.settimeout(5)
            thread = threading.Thread(target=_connect_quietly, args=(sock, emu.ws_url()))
            thread.start()
            emu.wait_for_fault("Stall")
            emu.stop()
            thread.join(10)
            assert not thread.is_alive()
        finally:
            sock.shutdown()
            emu.stop()


def _not_json(raw: Any) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return True
    return False


MALFORMED: Dict[str, Callable[[Any], bool]] = {
    "invalid_json": _not_json,
    "not_object": lambda raw: isinstance(json.loads(raw), list),
    "no_type": lambda raw: "type" not in json.loads(raw),
    "wrong_type": lambda raw: json.loads(raw)["type"] == 42,
    "unknown_type": lambda raw: json.loads(raw)["type"] == "x-text",
    "missing_payload": lambda raw: "content" not in json.loads(raw),
    "wrong_payload": lambda raw: json.loads(raw)["content"] == 12345,
    "binary": lambda raw: isinstance(raw, bytes),
    "deep_nesting": lambda raw: raw.count("[") == 100_000,
    "nan": lambda raw: math.isnan(json.loads(raw)["content"]["text"]),
}


def _connect_quietly(sock: websocket.WebSocket, url: str) -> None:
    try:
        sock.connect(url)
    except (OSError, websocket.WebSocketException):
        pass


class TestFrameFaults:
    def test_delays_are_recorded_and_keep_order(self, emu: Emulator) -> None:
        with opened(emu) as client:
            emu.arm_fault(Delay(0.05, when=On("text", nth=2), times=None))
            client.chat("hi")
            assert texts([client.recv() for _ in range(3)]) == ["one", "two", "three"]
        assert [(f.kind, f.detail) for f in emu.fault_firings] == [("Delay", "0.050 s")] * 2

    def test_random_draws_are_recorded(self, emu: Emulator) -> None:
        with opened(emu) as client:
            emu.arm_fault(Malform(when="text", times=None))
            emu.arm_fault(Delay(Uniform(0.001, 0.002), when="text", times=None))
            client.chat("hi")
            assert len([client.recv() for _ in range(3)]) == 3
        details = [(f.kind, f.detail) for f in emu.fault_firings]
        assert [kind for kind, _ in details] == ["Malform", "Delay"] * 3
        assert all(d in MALFORMATIONS for k, d in details if k == "Malform")
        assert all(d in ("0.001 s", "0.002 s") for k, d in details if k == "Delay")

    def test_delay_on_the_handshake_and_at_open(self, emu: Emulator) -> None:
        emu.arm_fault(Delay(0.05, when=HANDSHAKE))
        emu.arm_fault(Delay(Uniform(0.01, 0.02), when=OPEN))
        with opened(emu):
            pass
        assert [f.kind for f in emu.fault_firings] == ["Delay", "Delay"]

    def test_a_lognormal_delay_is_capped(self) -> None:
        import random

        delay = LogNormal(median=0.1, sigma=3.0, cap=0.5)
        draws = [delay.sample(random.Random(i)) for i in range(200)]
        assert max(draws) <= 0.5
        assert min(draws) > 0

    @pytest.mark.parametrize("how", sorted(set(MALFORMATIONS) - {"invalid_utf8"}))
    def test_malformed_frames(self, emu: Emulator, how: str) -> None:
        with opened(emu) as client:
            emu.arm_fault(Malform(how, when="text"))
            client.chat("hi")
            raw = client._ws.recv()  # as it came, not decoded
            assert texts([client.recv(), client.recv()]) == ["two", "three"]
        assert MALFORMED[how](raw), raw[:200]

    def test_invalid_utf8_breaks_the_stream(self, emu: Emulator) -> None:
        with opened(emu) as client:
            emu.arm_fault(Malform("invalid_utf8", when="text"))
            client.chat("hi")
            with pytest.raises((websocket.WebSocketException, WireClosed)):
                client.recv()

    def test_oversize_pads_to_the_byte(self, emu: Emulator) -> None:
        with opened(emu) as client:
            emu.arm_fault(Oversize(200_000, when="text"))
            client.chat("hi")
            client.recv()
        (big,) = [f for f in emu.server_frames if f.type == "text"][:1]
        assert len(big.text.encode("utf-8")) == 200_000
        assert big["content"]["text"].startswith("one")

    def test_duplicate_and_reorder(self, emu: Emulator) -> None:
        with opened(emu) as client:
            emu.arm_fault(Duplicate(2, when=On("text", nth=1)))
            emu.arm_fault(Reorder(when=On("text", nth=2)))
            client.chat("hi")
            assert texts([client.recv() for _ in range(5)]) == ["one", "one", "one", "three", "two"]

    def test_replace_and_inject(self, emu: Emulator) -> None:
        with opened(emu) as client:
            emu.arm_fault(Replace({"type": "brandNew", "x": 1}, when=On("text", nth=2)))
            emu.arm_fault(Inject(["not json", b"\x00"], when=On("text", nth=1)))
            client.chat("hi")
            frames = [client.recv() for _ in range(5)]
        assert frames[0]["content"]["text"] == "one"
        assert frames[1] == {"__text__": "not json"}
        assert frames[3] == {"type": "brandNew", "x": 1}

    def test_raw_bytes_reach_the_wire_as_they_are(self, emu: Emulator) -> None:
        with opened(emu) as client:
            emu.arm_fault(RawBytes(ws_frame(b'{"type":"handmade"}'), when="text"))
            client.chat("hi")
            assert [client.recv() for _ in range(2)][1] == {"type": "handmade"}

    @pytest.mark.parametrize("message", DOCUMENTED_ERRORS)
    def test_error_frames_with_each_documented_message(self, emu: Emulator, message: str) -> None:
        emu.arm_fault(ErrorFrame(message, close_code=1008))
        with WireClient(emu.ws_url()) as client:
            client.initialize()
            frames = client.recv_until_closed()
            assert client.closed is not None
            assert client.closed.code == 1008
        assert [f["type"] for f in frames] == ["event", "error"]
        assert frames[1]["data"] == {"message": message}

    def test_error_frame_on_a_client_frame(self, emu: Emulator) -> None:
        with opened(emu) as client:
            emu.arm_fault(ErrorFrame("Too large message", when=On("incomingChatMessage", "client")))
            client.chat("hi")
            assert client.recv()["data"]["message"] == "Too large message"
            assert texts([client.recv()]) == ["one"]  # no close_code: the turn goes on

    def test_failed_open_replaces_the_connection_event(self, emu: Emulator) -> None:
        emu.arm_fault(FailedOpen("agent is off"))
        with WireClient(emu.ws_url()) as client:
            client.initialize()
            (event,) = client.recv_until_closed()
            assert client.closed is not None
            assert client.closed.code == 1000
        assert (event["name"], event["data"]) == ("failedOpen", {"reason": "agent is off"})


class TestArming:
    def test_times_probability_and_seed(self) -> None:
        def run(seed: int) -> List[int]:
            with Emulator(ScriptedAgent(default="ok {user}", echo=False), seed=seed) as emu:
                emu.arm_fault(Duplicate(when="text", times=None, probability=0.5))
                with opened(emu) as client:
                    for i in range(20):
                        client.chat(str(i))
                        while client.recv()["content"]["text"] != f"ok {i}":
                            pass
                return [int(f.fault is not None) for f in emu.fault_firings] + [
                    i for i, f in enumerate(emu.server_frames) if f.type == "text"
                ]

        first, again, other = run(1), run(1), run(2)
        assert first == again
        assert first != other
        assert 20 < len(first) < 60  # about half of the 20 texts were duplicated

    def test_handle_counts_and_disarms(self, emu: Emulator) -> None:
        armed = emu.arm_fault(Duplicate(when="text", times=None))
        with opened(emu) as client:
            client.chat("hi")
            expected = ["one", "one", "two", "two", "three", "three"]
            assert texts([client.recv() for _ in range(6)]) == expected
            armed.disarm()
            client.chat("again")
            assert texts([client.recv() for _ in range(3)]) == ["one", "two", "three"]
        assert armed.fired == 3
        assert not armed.spent
        assert emu.faults.armed == []

    def test_armed_at_runtime_counts_from_arming(self, emu: Emulator) -> None:
        with opened(emu) as client:
            client.chat("warm")
            assert len([client.recv() for _ in range(3)]) == 3
            emu.arm_fault(Drop(when=On("text", nth=2)))
            client.chat("hi")
            assert texts(client.recv_until_closed()) == ["one", "two"]

    def test_reset_disarms_and_forgets_firings(self, emu: Emulator) -> None:
        emu.arm_fault(Duplicate(when="text"))
        emu.arm_fault(Drop(when="never-sent"))
        with opened(emu) as client:
            client.chat("hi")
            client.recv()
        emu.reset()
        assert emu.fault_firings == []
        assert emu.faults.armed == []

    def test_firings_say_what_when_and_where(self, emu: Emulator) -> None:
        fault = Drop(when=On("text", nth=2))
        with opened(emu) as client:
            emu.arm_fault(fault)
            client.chat("hi")
            client.recv_until_closed()
        (firing,) = emu.fault_firings
        record = emu.conversations[-1]
        assert firing.fault is fault
        assert (firing.kind, firing.connection_id, firing.frame_type) == ("Drop", 1, "text")
        assert firing.detail == ""
        assert firing.record_id == record.record_id
        assert record.started_at <= firing.at
        assert "Drop" in repr(firing)

    def test_the_original_drop_after_still_works_with_the_catalogue(self, emu: Emulator) -> None:
        with opened(emu) as client:
            emu.arm_fault(DropAfter(2))  # counts the agent's frames, not the copies
            emu.arm_fault(Duplicate(when="text"))
            client.chat("hi")
            assert texts(client.recv_until_closed()) == ["one", "one", "two"]
        assert [f.kind for f in emu.fault_firings] == ["Duplicate", "DropAfter"]

    @pytest.mark.parametrize(
        ("make", "error"),
        [
            (lambda: On("text", "sideways"), ValueError),
            (lambda: On("text", nth=0), ValueError),
            (lambda: Drop(times=0), ValueError),
            (lambda: Drop(probability=1.5), ValueError),
            (lambda: Malform("garbled"), ValueError),
            (lambda: Drop(when=42), TypeError),  # type: ignore[arg-type]
        ],
    )
    def test_bad_arguments(self, make: Any, error: type) -> None:
        with pytest.raises(error):
            make()

    def test_arm_refuses_a_non_fault(self, emu: Emulator) -> None:
        with pytest.raises(TypeError, match="not a fault"):
            emu.arm_fault(json)  # type: ignore[arg-type]
