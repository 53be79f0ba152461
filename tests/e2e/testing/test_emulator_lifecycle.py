"""The emulator as a whole: start/stop, reset, records, waiting helpers, faults, serve, plugin."""

import io
import logging
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, List

import pytest
from testkit import ROOT

import blackbox_sync as bb
from blackbox_sync.rest import Client
from blackbox_sync.testing import ConversationRecord, DropAfter, Emulator, ScriptedAgent
from blackbox_sync.testing.emulator import serve
from blackbox_sync.testing.ws.wire import WireClient

pytest_plugins = ["pytester"]

Connect = Callable[..., bb.Conversation]


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(ScriptedAgent(default="ok")) as emulator:
        yield emulator


def started(emu: Emulator, token: str = "") -> WireClient:
    client = WireClient(emu.ws_url(token or None))
    client.initialize()
    assert client.recv()["name"] == "connection"
    return client


class TestLifecycle:
    def test_stop_leaves_no_thread_and_is_idempotent(self) -> None:
        before = threading.active_count()
        emu = Emulator().start()
        assert emu.running
        assert threading.active_count() > before
        with started(emu) as client:
            client.chat("hi")
            client.recv()
        emu.stop()
        emu.stop()
        assert not emu.running
        assert threading.active_count() == before

    def test_stop_with_a_client_that_never_reads(self) -> None:
        before = threading.active_count()
        emu = Emulator().start()
        client = started(emu)
        began = time.monotonic()
        emu.stop()
        assert time.monotonic() - began < 5  # bounded: a silent client is cut off after a grace
        assert threading.active_count() == before
        client.recv_until_closed()
        assert client.closed is not None
        assert client.closed.code == 1001
        client.close()
        (record,) = emu.conversations
        assert (record.status, record.ended_by, record.finished) == (
            "Failed",
            "server_shutdown",
            True,
        )

    def test_start_twice_is_an_error_and_restart_works(self) -> None:
        emu = Emulator()
        with emu, pytest.raises(RuntimeError, match="already running"):
            emu.start()
        with emu, started(emu):
            pass

    def test_port_in_use_fails_start(self, emu: Emulator) -> None:
        with pytest.raises(OSError, match=r"(?i)address"):
            Emulator(port=emu.port).start()

    def test_urls_and_credentials(self, emu: Emulator) -> None:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", emu.base_url)
        assert emu.ws_url() == f"ws://127.0.0.1:{emu.port}/api/v1/ws/webCall?token={emu.token}"
        assert emu.ws_url(dev=True).endswith(f"/api/v1/ws/dev?authorization={emu.api_key}")
        assert emu.token.startswith("emu-token-")
        assert emu.api_keys == {emu.api_key}
        assert Emulator().token != emu.token

    def test_loop_is_the_server_loop(self, emu: Emulator) -> None:
        assert emu.loop.is_running()
        with pytest.raises(RuntimeError, match="not running"):
            _ = Emulator().loop


class TestReset:
    def test_reset_ends_connections_and_forgets_state_but_keeps_port_and_defaults(
        self, emu: Emulator
    ) -> None:
        port, token = emu.port, emu.token
        emu.add_token("extra")
        emu.set_agent("a", ScriptedAgent())
        emu.api_keys.add("extra-key")
        emu.default_agent = ScriptedAgent(default="changed")
        resets: List[int] = []
        emu.on_reset.append(lambda: resets.append(1))
        client = started(emu)
        emu.reset()
        client.recv_until_closed()
        assert client.closed is not None
        assert client.closed.code == 1001
        client.close()
        assert (emu.conversations, emu.frames, emu.server_frames) == ([], [], [])
        assert [grant.token for grant in emu.tokens] == [token]
        assert emu.agents == {}
        assert emu.api_keys == {emu.api_key}
        assert resets == [1]
        assert (emu.port, emu.token) == (port, token)
        with started(emu) as again:
            again.chat("hi")
            again.recv()
            assert again.recv()["content"]["text"] == "ok"  # the constructor's agent is back

    def test_seeded_record_ids_repeat_after_reset(self, emu: Emulator) -> None:
        with started(emu):
            pass
        first = emu.wait_for_conversation_end().record_id
        emu.reset()
        with started(emu):
            pass
        assert emu.wait_for_conversation_end().record_id == first
        with Emulator(seed=1) as other, started(other):
            pass
        assert other.conversations[0].record_id != first


class TestRecords:
    def test_frames_records_and_transcript(self, emu: Emulator) -> None:
        with started(emu) as client:
            client.chat("hi")
            client.recv()
            client.recv()
        record = emu.wait_for_conversation_end()
        assert [f["type"] for f in emu.frames] == ["initialize", "incomingChatMessage"]
        assert all(f.record_id == record.record_id for f in emu.frames)
        assert [f.type for f in record.client_frames] == ["initialize", "incomingChatMessage"]
        assert [f.type for f in record.server_frames] == ["event", "text", "text"]
        assert record.server_frames[1] == {
            "type": "text",
            "channelId": None,
            "content": {"source": "user", "text": "hi"},
            "timestamp": record.server_frames[1]["timestamp"],
        }
        assert record.transcript == [("user", "hi"), ("assistant", "ok")]
        assert record.ended_at is not None
        assert record.started_at <= record.ended_at
        assert record.duration is not None
        assert emu.conversation(record.record_id) == record
        with pytest.raises(KeyError):
            emu.conversation("nope")

    def test_snapshots_do_not_change_under_the_reader(self, emu: Emulator) -> None:
        with started(emu) as client:
            snapshot = emu.conversations[0]
            client.chat("hi")
            client.recv()
            client.recv()
        assert snapshot.transcript == []
        assert snapshot.status == "Running"
        assert emu.wait_for_conversation_end().transcript != []

    def test_wait_for_frame(self, emu: Emulator) -> None:
        with started(emu) as client:
            client.chat("one")
            client.chat("two")
            frame = emu.wait_for_frame("incomingChatMessage", count=2, timeout=5)
            assert frame["content"] == "two"
            reply = emu.wait_for_frame(
                "text", direction="server", where=lambda f: f["content"]["source"] == "assistant"
            )
            assert reply["content"]["text"] == "ok"
            with pytest.raises(TimeoutError):
                emu.wait_for_frame("terminate", timeout=0.05)

    def test_wait_for_conversation_end_times_out(self, emu: Emulator) -> None:
        with pytest.raises(TimeoutError):
            emu.wait_for_conversation_end(timeout=0.05)
        with started(emu), pytest.raises(TimeoutError):
            emu.wait_for_conversation_end(timeout=0.05)

    def test_end_callbacks_run_before_the_client_hears_the_end(self, emu: Emulator) -> None:
        seen: List[ConversationRecord] = []
        emu.on_conversation_end.append(seen.append)
        emu.on_conversation_end.append(lambda record: [][0])  # raises: logged, harmless
        emu.on_conversation_end.append(seen.append)
        with started(emu) as client:
            client.terminate()
            client.recv_type("conversationResult")
            assert len(seen) == 2
        assert seen[0].status == "Completed"
        assert seen[0].ended_by == "client_terminate"
        assert seen[0].ended_at is not None


class TestFaults:
    def test_drop_armed_before_connecting(self, emu: Emulator) -> None:
        emu.drop_next_connection_after(1)
        with started(emu) as client:  # the connection event is the one frame
            assert client.recv_until_closed() == []
            assert client.closed is not None
            assert client.closed.code == 1006
        record = emu.wait_for_conversation_end()
        assert (record.status, record.ended_by, record.close_code) == (
            "Failed",
            "connection_dropped",
            1006,
        )
        with started(emu):  # spent: the next connection is left alone
            pass

    def test_drop_mid_turn_counts_from_arming(self, emu: Emulator) -> None:
        emu.default_agent = ScriptedAgent(default=["one", "two", "three"])
        with started(emu) as client:
            emu.drop_next_connection_after(2)  # the echo and "one"
            client.chat("hi")
            frames = client.recv_until_closed()
            assert client.closed is not None
            assert client.closed.code == 1006
        assert [f["content"]["text"] for f in frames] == ["hi", "one"]

    def test_drop_on_a_client_frame(self, emu: Emulator) -> None:
        with started(emu) as client:
            emu.drop_next_connection_after(1, direction="client")
            client.chat("hi")
            assert client.recv_until_closed() == []  # dropped before the echo
        assert emu.frames[-1]["content"] == "hi"

    def test_drop_connection_now(self, emu: Emulator) -> None:
        with started(emu) as client:
            record_id = emu.conversations[0].record_id
            assert emu.drop_connection("other") == 0
            assert emu.drop_connection(record_id) == 1
            assert client.recv_until_closed() == []
            assert client.closed is not None
            assert client.closed.code == 1006

    def test_bad_direction(self) -> None:
        with pytest.raises(ValueError, match="direction"):
            DropAfter(1, "sideways")


def test_secrets_stay_out_of_logs_and_reprs(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    emu.add_token("secret-token-123", origins=["https://a.test"])
    with WireClient(emu.ws_url("secret-token-123"), origin="https://a.test") as client:
        client.initialize()
        client.recv()
        client.terminate()
        client.recv_until_closed()
    with WireClient(emu.ws_url("wrong-secret", dev=True)) as client:
        client.recv_until_closed()
    record = emu.wait_for_conversation_end()
    text = caplog.text + repr(emu) + repr(record) + repr(emu.tokens) + repr(emu.frames)
    assert "webCall?token=***" in caplog.text  # the handshake was logged, masked
    for secret in ("secret-token-123", "wrong-secret", emu.token, emu.api_key):
        assert secret not in text


def test_serve_prints_how_to_connect_and_stops(tmp_path: Path) -> None:
    class Output(io.StringIO):
        ready = threading.Event()

        def write(self, text: str) -> int:
            written = super().write(text)
            if "Ctrl-C" in text:
                self.ready.set()
            return written

    out, stop = Output(), threading.Event()
    thread = threading.Thread(
        target=serve,
        args=("127.0.0.1", 0, str(ROOT / "examples" / "agents" / "echo.json")),
        kwargs={"stop": stop, "out": out, "token": "cli-token"},
    )
    thread.start()
    try:
        assert out.ready.wait(10)
        printed = out.getvalue()
        base = re.search(r"listening on (http://\S+)", printed)
        assert base is not None
        assert "web integration token: cli-token" in printed
        url = "ws" + base.group(1)[len("http") :] + "/api/v1/ws/webCall?token=cli-token"
        with WireClient(url) as client:
            client.initialize()
            assert [client.recv()["type"] for _ in range(3)] == [
                "event",
                "text",
                "text",
            ]  # greeting
            client.chat("bye")
            client.recv_until_closed()
            assert client.received[-3]["content"]["text"] == "Bye!"
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_pytest_plugin_fixture(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(
        textwrap.dedent(
            """
            import pytest
            from blackbox_sync.testing import Rule, ScriptedAgent
            from blackbox_sync.testing.ws.wire import WireClient

            @pytest.fixture
            def blackbox_agent():
                return ScriptedAgent([Rule("hi", "Hello from the plugin")])

            def test_it(blackbox_emulator):
                with WireClient(blackbox_emulator.ws_url()) as client:
                    client.initialize()
                    client.recv()
                    client.chat("hi")
                    client.recv()
                    assert client.recv()["content"]["text"] == "Hello from the plugin"

            def test_default_agent(blackbox_emulator):
                assert blackbox_emulator.running
            """
        )
    )
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # same result installed or not
    result = pytester.runpytest_subprocess("-p", "blackbox_sync.testing.pytest_plugin", "-q")
    result.assert_outcomes(passed=2)


def test_agents_and_plugin_import_without_aiohttp() -> None:
    code = textwrap.dedent(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "aiohttp" or name.startswith("aiohttp."):
                    raise ImportError("no aiohttp here")
        sys.meta_path.insert(0, Block())
        import blackbox_sync.testing.pytest_plugin
        from blackbox_sync.testing import Rule, ScriptedAgent
        ScriptedAgent([Rule("a", "b")])
        try:
            from blackbox_sync.testing import Emulator
        except ImportError:
            print("ok")
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_rest_and_websocket_work_on_one_service_state(emulator: Emulator, connect: Connect) -> None:
    # A live WebSocket conversation is what the REST side counts, and a key added to the
    # service is one REST accepts: both halves read the same ServiceState.
    assert emulator.rest.service is emulator.service
    connect()
    extra_key = "emu-key-extra"
    with emulator.lock:
        emulator.api_keys.add(extra_key)
    with Client(api_key=extra_key, base_url=emulator.base_url) as client:
        assert client.misc.concurrency().active == 1
    emulator.reset()
    assert extra_key not in emulator.service.api_keys
    assert emulator.api_key in emulator.service.api_keys
