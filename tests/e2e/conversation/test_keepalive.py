"""Keepalive: idle conversations ping; an answering peer keeps one open, a silent one is caught."""

import asyncio
import threading
from typing import Iterator, List, Optional

import pytest
from aiohttp import WSMsgType, web

import blackbox_sync as bb
from blackbox_sync.protocol.codec import LooseStr
from blackbox_sync.protocol.messages import encode


class PingPeer:
    """A WebSocket server (aiohttp, pings handled by hand) that opens the conversation, records
    the client's pings and answers them only when ``answer_pings`` is set. The user's first
    message is answered after ``reply_after`` pings, so the reply needs a live keepalive. The
    close codes the client sent are kept in ``close_codes``; ``ended`` is set when the client's
    connection is over."""

    def __init__(self, answer_pings: bool, reply_after: int = 3) -> None:
        self.answer_pings = answer_pings
        self.reply_after = reply_after
        self.pings: List[bytes] = []
        self.close_codes: List[int] = []
        self.ended = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="ping-peer")
        self.runner: Optional[web.AppRunner] = None
        self.port = 0

    async def handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        try:
            await self.serve(ws)
        finally:
            self.ended.set()
        return ws

    async def serve(self, ws: web.WebSocketResponse) -> None:
        asked = False
        while True:
            msg = await ws.receive()  # not `async for`: it hides the close frame
            if msg.type == WSMsgType.CLOSE:
                self.close_codes.append(msg.data)
                return
            if msg.type in (WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return
            if msg.type == WSMsgType.PING:
                self.pings.append(msg.data)
                if self.answer_pings:
                    await ws.pong(msg.data)
                if asked and len(self.pings) == self.reply_after:
                    still_here = bb.TextMessage(source=LooseStr("assistant"), text="still here")
                    await ws.send_str(encode(still_here))
            elif msg.type == WSMsgType.TEXT and '"initialize"' in msg.data:
                connected = bb.Event(name=LooseStr("connection"), data={"recordId": "r-1"})
                await ws.send_str(encode(connected))
            elif msg.type == WSMsgType.TEXT:
                asked = True

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/v1/ws/webCall", self.handler)
        self.runner = web.AppRunner(app, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    def __enter__(self) -> "PingPeer":
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.start(), self.loop).result(5)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.runner is not None
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    def conversation(self) -> bb.Conversation:
        return bb.Conversation(
            token="t",
            base_url=f"http://127.0.0.1:{self.port}",
            ping_interval=0.05,
            ping_timeout=0.3,
            quiet_period=0.05,
            close_timeout=0.5,
        )


@pytest.fixture
def silent_peer() -> Iterator[PingPeer]:
    with PingPeer(answer_pings=False) as peer:
        yield peer


@pytest.fixture
def live_peer() -> Iterator[PingPeer]:
    with PingPeer(answer_pings=True) as peer:
        yield peer


def test_a_silent_peer_is_detected_by_keepalive(silent_peer: PingPeer) -> None:
    conv = silent_peer.conversation().connect(timeout=5)
    errors: List[bb.BlackBoxError] = []
    conv.on_error(errors.append)
    with pytest.raises(bb.ConnectionClosedError, match="keepalive"):
        conv.ask("anyone there?", timeout=10)
    conv.close()
    assert conv.closed
    assert silent_peer.pings == [b"keepalive"]
    assert any("keepalive" in str(e) for e in errors)


def test_a_keepalive_timeout_never_sends_1006(silent_peer: PingPeer) -> None:
    # 1006 is for local reporting only (RFC 6455 §7.4.1): the client says so, the wire does not.
    conv = silent_peer.conversation().connect(timeout=5)
    with pytest.raises(bb.ConnectionClosedError) as info:
        conv.ask("anyone there?", timeout=10)
    assert info.value.code == 1006
    conv.close()
    assert conv.close_code == 1006
    assert silent_peer.ended.wait(5)
    assert silent_peer.close_codes == [1011]


def test_a_peer_answering_pings_keeps_the_conversation_open(live_peer: PingPeer) -> None:
    conv = live_peer.conversation().connect(timeout=5)
    try:
        assert conv.ask("hello?", timeout=10).text == "still here"
        assert len(live_peer.pings) >= live_peer.reply_after
        assert not conv.errors
    finally:
        conv.close()
