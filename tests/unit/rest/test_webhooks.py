"""Webhook payload parsing, the framework-neutral handler, and the Flask and Django views."""

import json
import logging
import threading
from typing import Any, Dict, List

import pytest

from blackbox_sync.errors import ProtocolError
from blackbox_sync.rest import webhooks
from blackbox_sync.rest.webhooks import WebhookHandler

COMMON = {
    "status": "Completed",
    "callId": "call-1",
    "agentId": "agent-1",
    "orgId": "org-1",
    "callAdditionalData": {"orderId": "A1"},
    "agentAdditionalData": {},
}
COMPLETED = {
    **COMMON,
    "type": "CompletedWebHookPayload",
    "durationSeconds": 127,
    "transcription": [
        {"speaker": "assistant", "text": "Hi, how can I help you today?"},
        {"speaker": "user", "text": "I need to check on my order", "startTime": 1.5},
    ],
    "result": {"finishReason": "user_hangup", "postCallAnalysis": {"sentiment": "ok"}},
    "inspectorUrl": "https://blackbox.dasha.ai/calls/call_abc123",
    "sip": {"fromUser": "100", "toUser": "200", "diversion": ["a"]},
    "someNewField": 1,
}
TOOL = {
    **COMMON,
    "status": "Running",
    "type": "ToolWebHookPayload",
    "toolName": "checkOrderStatus",
    "arguments": {"orderNumber": "ORD-1"},
}


class TestParse:
    def test_completed(self) -> None:
        payload = webhooks.parse(json.dumps(COMPLETED).encode())
        assert isinstance(payload, webhooks.CompletedWebhook)
        assert payload.call_id == "call-1"
        assert payload.duration_seconds == 127
        assert payload.call_additional_data == {"orderId": "A1"}
        assert payload.transcription is not None
        assert payload.transcription[1].text == "I need to check on my order"
        assert payload.transcription[1].start_time == 1.5
        assert payload.result is not None
        assert payload.result.finish_reason == "user_hangup"
        assert payload.result.post_call_analysis == {"sentiment": "ok"}
        assert payload.sip is not None
        assert payload.sip.diversion == ["a"]
        assert payload.raw["someNewField"] == 1

    @pytest.mark.parametrize(
        ("kind", "cls"),
        [
            ("StartWebHookPayload", webhooks.StartWebhook),
            ("FailedWebHookPayload", webhooks.FailedWebhook),
            ("CallDeadLineWebHookPayload", webhooks.CallDeadlineWebhook),
            ("TransferWebHookPayload", webhooks.TransferWebhook),
            ("ToolWebHookPayload", webhooks.ToolWebhook),
            ("UnknownWebHookPayload", webhooks.UnknownWebhook),
            ("SomethingNewWebHookPayload", webhooks.UnknownWebhook),
        ],
    )
    def test_every_type(self, kind: str, cls: type) -> None:
        payload = webhooks.parse({**COMMON, "type": kind, "errorMessage": "busy"})
        assert type(payload) is cls
        assert payload.type == kind
        assert payload.raw["type"] == kind

    def test_failed_has_its_message(self) -> None:
        payload = webhooks.parse({**COMMON, "type": "FailedWebHookPayload", "errorMessage": "busy"})
        assert isinstance(payload, webhooks.FailedWebhook)
        assert payload.error_message == "busy"

    def test_tool_arguments_and_older_key_names(self) -> None:
        payload = webhooks.parse(json.dumps(TOOL))
        assert isinstance(payload, webhooks.ToolWebhook)
        assert payload.tool_name == "checkOrderStatus"
        assert payload.arguments == {"orderNumber": "ORD-1"}
        older = webhooks.parse({"type": "ToolWebHookPayload", "name": "x", "args": {"a": 1}})
        assert isinstance(older, webhooks.ToolWebhook)
        assert (older.tool_name, older.arguments) == ("x", {"a": 1})

    def test_missing_type_is_unknown(self) -> None:
        assert isinstance(webhooks.parse({"callId": "c"}), webhooks.UnknownWebhook)

    @pytest.mark.parametrize("body", [b"not json", b"[1, 2]", "", b'"text"'])
    def test_bodies_that_are_not_objects(self, body: Any) -> None:
        with pytest.raises(ProtocolError):
            webhooks.parse(body)

    def test_a_known_field_of_the_wrong_shape(self) -> None:
        with pytest.raises(ProtocolError, match="transcription"):
            webhooks.parse({"type": "CompletedWebHookPayload", "transcription": "oops"})


@pytest.fixture
def hooks() -> WebhookHandler:
    handler = WebhookHandler()

    @handler.tool("checkOrderStatus")
    def check(orderNumber: str) -> Dict[str, str]:
        return {"status": "shipped", "order": orderNumber}

    @handler.tool(with_payload=True)
    def who(payload: webhooks.ToolWebhook) -> str:
        return str(payload.call_id)

    @handler.tool("explode")
    def explode() -> None:
        raise RuntimeError("database down")

    return handler


class TestHandler:
    def test_a_tool_webhook_calls_the_function(self, hooks: WebhookHandler) -> None:
        assert hooks.handle(json.dumps(TOOL).encode()) == (
            200,
            {"status": "shipped", "order": "ORD-1"},
        )
        assert hooks.handle({**TOOL, "toolName": "who", "arguments": {}}) == (200, "call-1")

    def test_tool_problems_answer_an_error_result(
        self, hooks: WebhookHandler, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, "blackbox_sync.webhooks")
        status, body = hooks.handle({**TOOL, "toolName": "nope"})
        assert (status, body) == (200, {"error": "unknown tool 'nope'"})
        status, body = hooks.handle({**TOOL, "arguments": {"wrong": 1}})
        assert status == 200
        assert "bad arguments" in body["error"]
        status, body = hooks.handle({**TOOL, "arguments": [1]})
        assert "must be an object" in body["error"]
        status, body = hooks.handle({**TOOL, "toolName": "explode", "arguments": {}})
        assert body == {"error": "tool 'explode' failed: RuntimeError: database down"}
        assert "database down" in caplog.text

    def test_other_payloads_go_to_their_handlers(self, hooks: WebhookHandler) -> None:
        seen: List[object] = []
        hooks.on(webhooks.CompletedWebhook)(seen.append)
        hooks.on(webhooks.Webhook)(lambda p: seen.append(p.type))
        hooks.on(webhooks.StartWebhook)(lambda p: {"config": {"llmConfig": {"prompt": "VIP"}}})
        assert hooks.handle(COMPLETED) == (200, {})
        assert isinstance(seen[0], webhooks.CompletedWebhook)
        assert seen[1] == "CompletedWebHookPayload"
        start = {**COMMON, "type": "StartWebHookPayload"}
        assert hooks.handle(start) == (200, {"config": {"llmConfig": {"prompt": "VIP"}}})

    def test_a_bad_body_is_400(self, hooks: WebhookHandler) -> None:
        status, body = hooks.handle(b"{")
        assert status == 400
        assert "not JSON" in body["error"]

    def test_required_headers(self) -> None:
        guarded = WebhookHandler(required_headers={"X-Webhook-Secret": "s3cret"})
        assert guarded.handle(COMPLETED)[0] == 401
        assert guarded.handle(COMPLETED, {"x-webhook-secret": "wrong"})[0] == 401
        assert guarded.handle(COMPLETED, {"X-Webhook-Secret": "s3cret"})[0] == 200


class TestFlask:
    def test_view(self, hooks: WebhookHandler) -> None:
        flask = pytest.importorskip("flask")
        from blackbox_sync.contrib.flask import webhook_view

        app = flask.Flask(__name__)
        app.add_url_rule("/hook", view_func=webhook_view(hooks), methods=["POST"])
        with app.test_client() as http:
            answer = http.post("/hook", data=json.dumps(TOOL), content_type="application/json")
            assert answer.status_code == 200
            assert answer.get_json() == {"status": "shipped", "order": "ORD-1"}
            assert http.post("/hook", data=b"nope").status_code == 400
            assert http.get("/hook").status_code == 405

    def test_the_emulator_calls_a_flask_tool_over_http(self, hooks: WebhookHandler) -> None:
        """The emulator's agent runs a webhook tool served by Flask on a real socket."""
        flask = pytest.importorskip("flask")
        serving = pytest.importorskip("werkzeug.serving")
        from blackbox_sync.contrib.flask import webhook_view
        from blackbox_sync.rest import Client
        from blackbox_sync.testing import CallTool, Emulator, Rule, ScriptedAgent

        app = flask.Flask(__name__)
        app.add_url_rule("/hook", view_func=webhook_view(hooks), methods=["POST"])
        server = serving.make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, args=(0.01,))
        thread.start()
        agent = ScriptedAgent(
            [
                Rule(
                    "order",
                    "It is {result[status]}.",
                    tools=[CallTool("checkOrderStatus", {"orderNumber": "{user}"})],
                )
            ]
        )
        try:
            with Emulator(agent=agent) as emu, Client(emu.api_key, emu.base_url) as client:
                url = f"http://127.0.0.1:{server.server_port}/hook"
                tool = {"name": "checkOrderStatus", "webhook": {"url": url}}
                created = client.agents.create("Orders", {"tools": [tool]})
                reply = client.text_chat.session(str(created.agent_id)).say("order 42")
                assert reply.text == "It is shipped."
                assert reply.messages[0].tool_calls is not None
                assert reply.messages[0].tool_calls[0].response == {
                    "status": "shipped",
                    "order": "order 42",
                }
        finally:
            server.shutdown()
            thread.join(5)


@pytest.fixture(scope="module")
def django_settings() -> Any:
    django = pytest.importorskip("django")
    from django.conf import settings

    if not settings.configured:
        settings.configure(SECRET_KEY="test", ALLOWED_HOSTS=["*"], DEBUG=False, USE_TZ=True)
        django.setup()
    return settings


class TestDjango:
    def test_view(self, hooks: WebhookHandler, django_settings: Any) -> None:
        from django.test import RequestFactory

        from blackbox_sync.contrib.django import webhook_view

        view = webhook_view(hooks)
        assert getattr(view, "csrf_exempt", False)
        factory = RequestFactory()
        answer = view(factory.post("/hook", data=json.dumps(TOOL), content_type="application/json"))
        assert answer.status_code == 200
        assert json.loads(answer.content) == {"status": "shipped", "order": "ORD-1"}
        assert view(factory.get("/hook")).status_code == 405
        guarded = webhook_view(WebhookHandler(required_headers={"X-Secret": "s"}))
        request = factory.post(
            "/hook", data=json.dumps(COMPLETED), content_type="application/json", HTTP_X_SECRET="s"
        )
        assert guarded(request).status_code == 200
        bare = factory.post("/hook", data=json.dumps(COMPLETED), content_type="application/json")
        assert guarded(bare).status_code == 401


def test_the_library_does_not_need_the_frameworks() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['flask'] = None; sys.modules['django'] = None\n"
        "import blackbox_sync.rest.webhooks, blackbox_sync.rest, blackbox_sync.contrib.flask, "
        "blackbox_sync.contrib.django\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"
