"""The hostile peer itself speaks enough WebSocket for a real client to hold a conversation."""

from typing import Callable

from ws_peer import HostileServer, PeerConnection, Script, server_frame

import blackbox_sync as bb


def test_a_conversation_against_the_hostile_peer(
    hostile_ws: Callable[[Script], HostileServer],
) -> None:
    def script(peer: PeerConnection) -> None:
        peer.open_conversation()
        message = peer.recv_until_type("incomingChatMessage")
        reply = {"source": "assistant", "text": f"echo {message['content']}"}
        peer.send_json(server_frame("text", content=reply))
        peer.recv_until_type("terminate")
        peer.send_json(server_frame("conversationResult", result={"status": "completed"}))
        peer.send_close(1000)
        peer.wait_client_close()

    server = hostile_ws(script)
    with bb.Conversation(url=server.ws_url(), allow_insecure=True, quiet_period=0.05) as conv:
        assert conv.ask("hi", timeout=5).text == "echo hi"
    assert conv.result is not None
    assert conv.result.status == "completed"
    assert all(server.connections[0].masked)
