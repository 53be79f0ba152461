"""examples/django_app: the support page, its JSON API and its webhook endpoint, driven by
Django's own test client against a real emulator; and ``manage.py runserver`` against an
emulator process, as its README describes."""

import os
import queue
import re
import socket
import subprocess
import sys
import threading
from typing import Any, Dict, Iterator, List

import pytest
from testkit import ROOT, start_reader, stop_process

from blackbox_sync.testing import Emulator, Rule, ScriptedAgent

django = pytest.importorskip("django")
requests = pytest.importorskip("requests")

SITE = ROOT / "examples" / "django_app"
ORDER_AGENT = ROOT / "examples" / "agents" / "order-support.yaml"
SECRET = "hook-secret-456"
TIMEOUT = 20

if str(SITE) not in sys.path:
    sys.path.insert(0, str(SITE))

from django.conf import settings  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from support_site import settings as site_settings  # noqa: E402

SITE_SETTINGS: Dict[str, Any] = {
    k: getattr(site_settings, k) for k in dir(site_settings) if k.isupper()
}
# What tests override: everything but DATABASES (the site has none; Django warns on overriding).
OVERRIDES = {k: v for k, v in SITE_SETTINGS.items() if k != "DATABASES"}

# Django is configured once per process. Another test module may have done it already with its
# own settings; every test below applies the site's settings with override_settings either way.
if not settings.configured:
    settings.configure(**SITE_SETTINGS)
    django.setup()

QUICK_AGENT = ScriptedAgent(
    [
        Rule(r"ORD-\d+", "Order {match[0]} is noted.", regex=True),
        Rule("bye", "Goodbye!", end_conversation=True),
    ],
    greeting="Hello!",
)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(agent=ScriptedAgent.from_file(ORDER_AGENT)) as emulator:
        yield emulator


@pytest.fixture
def site(emu: Emulator) -> Iterator[None]:
    """The example's settings, pointed at the emulator; conversations closed afterwards."""
    blackbox = {
        **SITE_SETTINGS["BLACKBOX"],
        "TOKEN": emu.token,
        "API_KEY": None,
        "BASE_URL": emu.base_url,
        "TALK_FIRST": True,
        "QUIET_PERIOD": 0.3,
        "ASK_TIMEOUT": 10.0,
        "WEBHOOK_SECRET": SECRET,
    }
    with override_settings(**{**OVERRIDES, "BLACKBOX": blackbox}):
        from support import blackbox as site_blackbox

        try:
            yield
        finally:
            site_blackbox.close()


def ask(client: Client, question: str) -> Dict[str, Any]:
    answer = client.post("/support/ask", {"question": question}, content_type="application/json")
    assert answer.status_code == 200, answer.content
    body: Dict[str, Any] = answer.json()
    return body


def test_the_support_page_relays_a_question_and_answers_the_tool(site: None, emu: Emulator) -> None:
    client = Client()
    page = client.get("/support").content.decode()
    assert "Where is ORD-12345?" in page
    assert "csrfmiddlewaretoken" in page
    page = client.post("/support", {"question": "Where is ORD-12345?"}).content.decode()
    assert "Hi! I can check your order status." in page
    assert '<div class="line user">Where is ORD-12345?</div>' in page
    assert "Order ORD-12345 is shipped." in page
    assert '<div class="line agent">um</div>' not in page
    (record,) = emu.conversations
    (call,) = record.tool_calls
    assert call.result == {"orderNumber": "ORD-12345", "status": "shipped"}


def test_the_form_is_csrf_protected(site: None) -> None:
    strict = Client(enforce_csrf_checks=True)
    assert strict.post("/support", {"question": "hi"}).status_code == 403
    assert strict.post("/support/ask", {}, content_type="application/json").status_code == 403


def test_the_json_api(site: None) -> None:
    client = Client()
    assert ask(client, "Where is ORD-777?") == {
        "reply": "Let me check that for you. Order ORD-777 is being packed.",
        "reason": "quiet",
        "ended": False,
    }
    empty = client.post("/support/ask", {}, content_type="application/json")
    assert empty.status_code == 400
    assert client.get("/support/ask").status_code == 405


def test_what_visitors_type_is_escaped(site: None, emu: Emulator) -> None:
    emu.default_agent = ScriptedAgent(default="You said: {user}", greeting="Hi.")
    page = Client().post("/support", {"question": "<script>alert(1)</script>"}).content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_one_conversation_per_visitor_shared_by_concurrent_requests(
    site: None, emu: Emulator
) -> None:
    emu.default_agent = QUICK_AGENT
    first = Client()
    ask(first, "ORD-1")
    ask(Client(), "ORD-2")  # another visitor
    cookie = first.cookies["sessionid"].value
    answers: Dict[str, str] = {}
    errors: queue.Queue[BaseException] = queue.Queue()

    def tab(order: str) -> None:
        try:
            client = Client()  # another tab of the first visitor, on its own thread
            client.cookies["sessionid"] = cookie
            answers[order] = ask(client, f"Where is {order}?")["reply"]
        except BaseException as exc:
            errors.put(exc)

    orders = [f"ORD-{n}" for n in range(10, 14)]
    threads = [threading.Thread(target=tab, args=(o,)) for o in orders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert errors.empty(), errors.get()
    assert answers == {o: f"Order {o} is noted." for o in orders}
    users: List[List[str]] = [
        [text for who, text in r.transcript if who == "user"] for r in emu.conversations
    ]
    assert len(users) == 2
    assert sorted(len(u) for u in users) == [1, 5]


def test_ending_and_starting_again(site: None, emu: Emulator) -> None:
    emu.default_agent = QUICK_AGENT
    client = Client()
    ask(client, "ORD-1")
    ended = client.post("/support/end", {}, content_type="application/json")
    assert ended.json() == {"ended": True, "status": "Completed"}
    body = ask(client, "bye")  # a new conversation, which the agent ends
    assert body["ended"] is True
    assert client.post("/support/end").status_code == 302
    assert [r.ended_by for r in emu.conversations] == ["client_terminate", "agent"]


def test_a_rejected_token_is_an_error_message(emu: Emulator) -> None:
    blackbox = {**SITE_SETTINGS["BLACKBOX"], "TOKEN": "wrong-token", "BASE_URL": emu.base_url}
    with override_settings(**{**OVERRIDES, "BLACKBOX": blackbox}):
        from support import blackbox as site_blackbox

        try:
            page = Client().post("/support", {"question": "hi"}).content.decode()
            assert "The assistant is not available right now" in page
            assert "wrong-token" not in page
        finally:
            site_blackbox.close()


def test_the_webhook_endpoint(site: None) -> None:
    tool = {
        "type": "ToolWebHookPayload",
        "callId": "call-1",
        "toolName": "checkOrderStatus",
        "arguments": {"orderNumber": "ORD-12345"},
    }
    client = Client(enforce_csrf_checks=True)  # the service sends no CSRF token
    answer = client.post(
        "/blackbox/webhook", tool, content_type="application/json", HTTP_X_WEBHOOK_SECRET=SECRET
    )
    assert answer.status_code == 200
    assert answer.json() == {"orderNumber": "ORD-12345", "status": "shipped"}
    assert (
        client.post("/blackbox/webhook", tool, content_type="application/json").status_code == 401
    )


def test_runserver_against_an_emulator_process() -> None:
    """The README's two terminals: ``blackbox-sync emulator`` and ``manage.py runserver``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLACKBOX_")}
    emulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "blackbox_sync",
            "emulator",
            "--port",
            "0",
            "--token",
            "demo-token",
            "--agent",
            str(ORDER_AGENT),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    with socket.socket() as probe:  # a free port for runserver, which cannot pick one itself
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = None
    lines: queue.Queue[str] = queue.Queue()
    readers: List[threading.Thread] = []

    def follow(proc: "subprocess.Popen[str]") -> None:
        readers.append(start_reader(proc, lines))

    try:
        follow(emulator)
        base_url = ""
        while not base_url:
            match = re.search(r"listening on (http://\S+)", lines.get(timeout=TIMEOUT))
            base_url = match.group(1) if match else ""
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=str(SITE),
            env={
                **env,
                "BLACKBOX_TOKEN": "demo-token",
                "BLACKBOX_BASE_URL": base_url,
                "BLACKBOX_TALK_FIRST": "1",
                "PYTHONUNBUFFERED": "1",
            },
        )
        follow(server)
        while "Quit the server with" not in lines.get(timeout=TIMEOUT):
            pass
        with requests.Session() as browser:
            page = browser.get(f"http://127.0.0.1:{port}/support", timeout=TIMEOUT)
            assert page.status_code == 200
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
            assert token
            answer = browser.post(
                f"http://127.0.0.1:{port}/support",
                data={"question": "Where is ORD-12345?", "csrfmiddlewaretoken": token.group(1)},
                headers={"Referer": f"http://127.0.0.1:{port}/support"},
                timeout=TIMEOUT,
            )
            assert answer.status_code == 200, answer.text
            assert "Order ORD-12345 is shipped." in answer.text
    finally:
        followed = dict(zip((emulator, server), readers))  # follow() ran in this order
        for proc in (server, emulator):
            if proc is not None:
                stop_process(proc, followed.get(proc))
