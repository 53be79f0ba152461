"""examples/flask_app: the support page, its JSON API and its webhook endpoint, driven by Flask's
own test client against a real emulator; and the README command that serves it."""

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List

import pytest
from testkit import ROOT, start_reader

import blackbox_sync as bb
from blackbox_sync.testing import CallTool, Emulator, Rule, ScriptedAgent

if TYPE_CHECKING:
    from flask import Flask
    from flask.testing import FlaskClient

flask = pytest.importorskip("flask")
requests = pytest.importorskip("requests")

EXAMPLES = ROOT / "examples"
ORDER_AGENT = EXAMPLES / "agents" / "order-support.yaml"
SECRET = "hook-secret-123"
TIMEOUT = 20

if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

from flask_app.app import create_app  # noqa: E402  (the example is not an installed package)

from blackbox_sync.contrib.conversations import ConversationRegistry  # noqa: E402

QUICK_AGENT = ScriptedAgent(
    [
        Rule(r"ORD-\d+", "Order {match[0]} is noted.", regex=True),
        Rule("bye", "Goodbye!", end_conversation=True),
    ],
    default="Ask me about an order.",
    greeting="Hello!",
)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(agent=ScriptedAgent.from_file(ORDER_AGENT)) as emulator:
        yield emulator


@pytest.fixture
def app(emu: Emulator) -> Iterator["Flask"]:
    application = create_app(
        {
            "TESTING": True,
            "BLACKBOX_TOKEN": emu.token,
            "BLACKBOX_BASE_URL": emu.base_url,
            "BLACKBOX_QUIET_PERIOD": 0.3,
            "BLACKBOX_ASK_TIMEOUT": 10.0,
            "BLACKBOX_TALK_FIRST": True,  # every agent here greets first
            "WEBHOOK_SECRET": SECRET,
        }
    )
    yield application
    application.extensions["blackbox_registry"].close_all()


def ask(client: "FlaskClient", question: str) -> Dict[str, Any]:
    answer = client.post("/support/ask", json={"question": question})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body: Dict[str, Any] = answer.get_json()
    return body


def test_the_support_page_relays_a_question_and_answers_the_tool(
    app: "Flask", emu: Emulator
) -> None:
    with app.test_client() as client:
        page = client.get("/support").get_data(as_text=True)
        assert "Where is ORD-12345?" in page  # the hint
        page = client.post("/support", data={"question": "Where is ORD-12345?"}).get_data(
            as_text=True
        )
    assert "Hi! I can check your order status." in page  # the greeting
    assert '<div class="line user">Where is ORD-12345?</div>' in page
    assert "Order ORD-12345 is shipped." in page  # the status came from order_tools
    assert '<div class="line agent">um</div>' not in page  # fillers are left out
    (record,) = emu.conversations
    (call,) = record.tool_calls
    assert call.result == {"orderNumber": "ORD-12345", "status": "shipped"}
    assert record.additional_data is not None
    assert record.additional_data["channel"] == "support-page"


def test_the_json_api(app: "Flask") -> None:
    with app.test_client() as client:
        body = ask(client, "Where is ORD-777?")
        assert body == {
            "reply": "Let me check that for you. Order ORD-777 is being packed.",
            "reason": "quiet",
            "ended": False,
        }
        assert client.post("/support/ask", json={}).status_code == 400


def test_what_visitors_type_is_escaped(app: "Flask", emu: Emulator) -> None:
    emu.default_agent = ScriptedAgent(default="You said: {user}", greeting="Hi.")
    with app.test_client() as client:
        page = client.post("/support", data={"question": "<script>alert(1)</script>"})
    text = page.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_one_conversation_per_visitor(app: "Flask", emu: Emulator) -> None:
    emu.default_agent = QUICK_AGENT
    with app.test_client() as first, app.test_client() as second:
        ask(first, "ORD-1")
        ask(first, "ORD-2")
        ask(second, "ORD-3")
    assert len(emu.conversations) == 2
    users = [[text for who, text in r.transcript if who == "user"] for r in emu.conversations]
    assert sorted(users) == [["ORD-1", "ORD-2"], ["ORD-3"]]


def test_concurrent_questions_of_one_visitor_share_its_conversation(
    app: "Flask", emu: Emulator
) -> None:
    emu.default_agent = QUICK_AGENT
    with app.test_client() as opener:
        ask(opener, "hello")
        cookie = opener.get_cookie("session")
    assert cookie is not None
    answers: Dict[str, str] = {}
    errors: queue.Queue[BaseException] = queue.Queue()

    def visitor_tab(order: str) -> None:
        try:
            with app.test_client() as tab:  # another browser tab: same cookie, own thread
                tab.set_cookie("session", cookie.value)
                answers[order] = ask(tab, f"Where is {order}?")["reply"]
        except BaseException as exc:
            errors.put(exc)

    orders = [f"ORD-{n}" for n in range(4)]
    threads = [threading.Thread(target=visitor_tab, args=(o,)) for o in orders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert errors.empty(), errors.get()
    assert answers == {o: f"Order {o} is noted." for o in orders}  # each got its own reply
    (record,) = emu.conversations
    assert sum(1 for who, _ in record.transcript if who == "user") == 5


def test_ending_and_starting_again(app: "Flask", emu: Emulator) -> None:
    emu.default_agent = QUICK_AGENT
    with app.test_client() as client:
        ask(client, "ORD-1")
        ended = client.post("/support/end", json={})
        assert ended.get_json() == {"ended": True, "status": "Completed"}
        assert emu.wait_for_conversation_end(timeout=5).ended_by == "client_terminate"
        ask(client, "ORD-2")  # a new conversation
        body = ask(client, "bye")  # the agent ends this one
        assert body["ended"] is True
        assert body["reason"] == "conversation_result"
        ask(client, "ORD-3")  # and the next question starts a third
        assert client.post("/support/end").status_code == 302  # the form's redirect
    ended_by = [r.ended_by for r in emu.conversations]
    assert ended_by == ["client_terminate", "agent", "client_terminate"]


def test_an_unreachable_service_is_an_error_message_not_a_crash(emu: Emulator) -> None:
    application = create_app(
        {"TESTING": True, "BLACKBOX_TOKEN": "wrong-token", "BLACKBOX_BASE_URL": emu.base_url}
    )
    try:
        with application.test_client() as client:
            page = client.post("/support", data={"question": "hi"})
            assert page.status_code == 200
            assert "The assistant is not available right now" in page.get_data(as_text=True)
            assert "wrong-token" not in page.get_data(as_text=True)
            answer = client.post("/support/ask", json={"question": "hi"})
            assert answer.status_code == 502
            assert "Invalid token" in answer.get_json()["error"]
    finally:
        application.extensions["blackbox_registry"].close_all()


class TestWebhook:
    TOOL = {
        "type": "ToolWebHookPayload",
        "callId": "call-1",
        "agentId": "agent-1",
        "toolName": "checkOrderStatus",
        "arguments": {"orderNumber": "ORD-777"},
    }

    def test_a_tool_webhook_is_answered_by_the_same_function(self, app: "Flask") -> None:
        with app.test_client() as client:
            answer = client.post(
                "/blackbox/webhook", json=self.TOOL, headers={"X-Webhook-Secret": SECRET}
            )
            assert answer.status_code == 200
            assert answer.get_json() == {"orderNumber": "ORD-777", "status": "being packed"}
            unsigned = client.post("/blackbox/webhook", json=self.TOOL)
            assert unsigned.status_code == 401

    def test_the_agent_calls_the_webhook_over_http(self, app: "Flask", emu: Emulator) -> None:
        """The emulator's agent runs its webhook tool against the app on a real socket."""
        from werkzeug.serving import make_server

        from blackbox_sync.rest import Client

        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,))
        thread.start()
        try:
            with Client(emu.api_key, emu.base_url) as rest:
                url = f"http://127.0.0.1:{server.server_port}/blackbox/webhook"
                tool = {
                    "name": "checkOrderStatus",
                    "webhook": {"url": url, "headers": {"X-Webhook-Secret": SECRET}},
                }
                agent = rest.agents.create("Orders", {"tools": [tool]})
                agent_id = str(agent.agent_id)
                emu.set_agent(
                    agent_id,
                    ScriptedAgent(
                        [
                            Rule(
                                r"ORD-\d+",
                                "It is {result[status]}.",
                                regex=True,
                                tools=[CallTool("checkOrderStatus", {"orderNumber": "{match[0]}"})],
                            )
                        ]
                    ),
                )
                reply = rest.text_chat.session(agent_id).say("Where is ORD-777?")
            assert reply.text == "It is being packed."
        finally:
            server.shutdown()
            thread.join(5)
            server.server_close()


class TestRegistry:
    """The registry on its own, with a fake clock, against the emulator."""

    @pytest.fixture
    def opened(self, emu: Emulator) -> Iterator[List[bb.Conversation]]:
        emu.default_agent = QUICK_AGENT
        made: List[bb.Conversation] = []
        yield made
        for conversation in made:
            conversation.close()

    def factory(
        self, emu: Emulator, made: List[bb.Conversation]
    ) -> Callable[[str], bb.Conversation]:
        def open_conversation(key: str) -> bb.Conversation:
            conversation = bb.Conversation(token=emu.token, base_url=emu.base_url, quiet_period=0.2)
            made.append(conversation)
            return conversation

        return open_conversation

    def test_idle_conversations_are_closed_on_the_next_access(
        self, emu: Emulator, opened: List[bb.Conversation]
    ) -> None:
        now = [0.0]
        registry = ConversationRegistry(
            self.factory(emu, opened), max_idle=60, clock=lambda: now[0]
        )
        try:
            registry.ask("a", "ORD-1", timeout=5)
            now[0] = 61.0
            registry.ask("b", "ORD-2", timeout=5)
            assert registry.get("a") is None
            assert opened[0].closed
            assert len(registry) == 1
        finally:
            registry.close_all()
        assert all(c.closed for c in opened)

    def test_the_least_recently_used_makes_room(
        self, emu: Emulator, opened: List[bb.Conversation]
    ) -> None:
        now = [0.0]
        registry = ConversationRegistry(
            self.factory(emu, opened), max_conversations=2, clock=lambda: now[0]
        )
        try:
            for n, key in enumerate(["a", "b", "a", "c"]):
                now[0] = float(n)
                registry.conversation(key)
            assert registry.get("b") is None  # b was used least recently
            assert registry.get("a") is not None
            assert len(registry) == 2
        finally:
            registry.close_all()

    def test_simultaneous_first_requests_open_one_conversation(
        self, emu: Emulator, opened: List[bb.Conversation]
    ) -> None:
        registry = ConversationRegistry(self.factory(emu, opened))
        barrier = threading.Barrier(4)
        got: queue.Queue[Any] = queue.Queue()

        def first_request() -> None:
            barrier.wait(TIMEOUT)
            got.put(registry.conversation("same-visitor"))

        threads = [threading.Thread(target=first_request) for _ in range(4)]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(TIMEOUT)
            conversations = {id(got.get_nowait()) for _ in range(4)}
            assert len(conversations) == 1
            assert len(opened) == 1
        finally:
            registry.close_all()


def test_the_readme_command_serves_the_page() -> None:
    """``python examples/flask_app/app.py --emulator``, used with a real HTTP client."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLACKBOX_")}
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "flask_app" / "app.py"), "--emulator", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=str(ROOT),
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = start_reader(proc, lines)
    try:
        first = lines.get(timeout=TIMEOUT)
        match = re.search(r"Support page: (http://\S+)", first)
        assert match, first
        url = match.group(1)
        with requests.Session() as browser:
            assert "Support" in browser.get(url, timeout=TIMEOUT).text
            answer = browser.post(
                f"{url}/ask", json={"question": "Where is ORD-12345?"}, timeout=TIMEOUT
            )
            assert answer.status_code == 200, answer.text
            assert json.loads(answer.text)["reply"].endswith("Order ORD-12345 is shipped.")
        proc.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop
        assert proc.wait(TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        reader.join(5)
        assert proc.stdout is not None
        proc.stdout.close()
