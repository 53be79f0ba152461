"""Every REST endpoint of PROTOCOL.md §8 through ``bb.Client``, against the emulator on loopback."""

import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from blackbox_sync.errors import ApiError, ConflictError, NotFoundError
from blackbox_sync.protocol.codec import LooseStr
from blackbox_sync.rest import (
    AgentConfig,
    CallRequest,
    CallStatus,
    ChatMessage,
    Client,
    Features,
    LlmConfig,
    RetryPolicy,
    webhooks,
)
from blackbox_sync.testing import CallTool, Emulator, Rule, ScriptedAgent


class Receiver:
    """A webhook endpoint on loopback that records each POST and answers from a script."""

    def __init__(self) -> None:
        self.received: List[Tuple[str, Dict[str, str], Any]] = []
        self.answers: List[Tuple[int, Any]] = []
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"null")
                with receiver.changed:
                    receiver.received.append((self.path, dict(self.headers), body))
                    status, answer = receiver.answers.pop(0) if receiver.answers else (200, {})
                    receiver.changed.notify_all()
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(0.01,), name="test-receiver"
        )

    def payloads(self) -> List[Any]:
        with self.changed:
            return [body for _, _, body in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()
    r.thread.join(5)


@pytest.fixture
def client(emulator: Emulator) -> Iterator[Client]:
    emulator.rest.call_step_seconds = None  # calls move only when a test says so
    policy = RetryPolicy(backoff=0.001)
    with Client(api_key=emulator.api_key, base_url=emulator.base_url, retry=policy) as c:
        yield c


def make_agent(client: Client, name: str = "Support", **config: Any) -> str:
    agent = client.agents.create(name, {"primaryLanguage": "en-US", **config})
    assert agent.agent_id
    return str(agent.agent_id)


def bodies(emulator: Emulator, path: str, method: str) -> List[Any]:
    return [r.body for r in emulator.rest.requests_to(path, method)]


class TestAgents:
    def test_create_get_list_delete(self, client: Client) -> None:
        created = client.agents.create(
            "Support",
            AgentConfig(primary_language="en-US", llm_config=LlmConfig(prompt="Be nice.")),
            description="first",
            additional_data={"team": "a"},
        )
        assert created.version == 1
        assert created.is_enabled is True
        fetched = client.agents.get(str(created.agent_id))
        assert fetched.name == "Support"
        assert fetched.config.llm_config is not None
        assert fetched.config.llm_config.prompt == "Be nice."
        assert fetched.additional_data == {"team": "a"}
        assert [a.agent_id for a in client.agents.list()] == [created.agent_id]
        client.agents.delete(str(created.agent_id))
        with pytest.raises(NotFoundError):
            client.agents.get(str(created.agent_id))

    def test_paging_through_agents(self, client: Client, emulator: Emulator) -> None:
        ids = [make_agent(client, f"agent {n}") for n in range(5)]
        assert [a.agent_id for a in client.agents.iter_all(page_size=2)] == ids
        queries = [r.path for r in emulator.rest.requests_to("/agents?", "GET")]
        assert queries == [
            "/agents?skip=0&take=2",
            "/agents?skip=2&take=2",
            "/agents?skip=4&take=2",
        ]

    def test_update_by_id_round_trips_unknown_config(
        self, client: Client, emulator: Emulator
    ) -> None:
        config: Dict[str, Any] = {
            "llmConfig": {"prompt": "old", "apiKey": "sk-x", "vendorSpecificOptions": {"a": 1}},
            "futureSetting": {"deep": [1, 2, {"x": None}]},
            "features": {"fillers": {"isEnabled": True}},
        }
        agent_id = make_agent(client, **config)
        updated = client.agents.update(
            agent_id,
            name="Renamed",
            is_enabled=False,
            config={"llmConfig": {"prompt": "new"}, "features": {"talkFirst": {"isEnabled": True}}},
        )
        assert updated.version == 2
        assert updated.name == "Renamed"
        assert updated.is_enabled is False
        stored = emulator.rest.agents[agent_id]["config"]
        assert stored["llmConfig"] == {
            "prompt": "new",
            "apiKey": "sk-x",
            "vendorSpecificOptions": {"a": 1},
        }
        assert stored["futureSetting"] == {"deep": [1, 2, {"x": None}]}
        assert stored["features"] == {
            "fillers": {"isEnabled": True},
            "talkFirst": {"isEnabled": True},
        }
        (put,) = bodies(emulator, "/agents/", "PUT")
        assert put["agentId"] == agent_id
        assert put["version"] == 1  # the whole object goes back, as fetched

    def test_update_a_modified_agent_object(self, client: Client, emulator: Emulator) -> None:
        agent_id = make_agent(
            client, tools=[{"name": "lookup", "schema": {"type": "object"}, "timeoutMs": 500}]
        )
        agent = client.agents.get(agent_id)
        assert agent.config.tools is not None
        agent.config.tools[0].description = "Finds orders"
        agent.config.llm_config = LlmConfig(prompt="Hello")
        agent.description = "changed"
        updated = client.agents.update(agent)
        assert updated.description == "changed"
        stored = emulator.rest.agents[agent_id]["config"]
        assert stored["tools"] == [
            {
                "name": "lookup",
                "schema": {"type": "object"},
                "timeoutMs": 500,
                "description": "Finds orders",
            }
        ]
        assert stored["llmConfig"] == {"prompt": "Hello"}
        assert stored["primaryLanguage"] == "en-US"

    def test_none_set_on_an_agent_object_clears_the_field(
        self, client: Client, emulator: Emulator, receiver: Receiver
    ) -> None:
        agent_id = make_agent(
            client,
            llmConfig={"prompt": "Be nice.", "apiKey": "sk-x"},
            resultWebhook={"url": receiver.url, "headers": {"X-Secret": "s3"}},
            futureSetting={"keep": True},
        )
        client.agents.update(agent_id, description="to be removed")
        agent = client.agents.get(agent_id)
        assert agent.config.llm_config is not None
        agent.description = None
        agent.config.result_webhook = None
        agent.config.llm_config.prompt = None
        updated = client.agents.update(agent)

        assert updated.description is None
        assert updated.config.result_webhook is None
        stored = emulator.rest.agents[agent_id]
        assert stored["description"] is None
        assert stored["config"]["resultWebhook"] is None
        assert stored["config"]["llmConfig"] == {"prompt": None, "apiKey": "sk-x"}
        assert stored["config"]["futureSetting"] == {"keep": True}
        put = bodies(emulator, "/agents/", "PUT")[-1]
        # Attributes the service never sent stay off the wire instead of becoming nulls.
        for absent in ("ttsConfig", "sttConfig", "features", "tools", "mcpConnections"):
            assert absent not in put["config"]
        assert set(put["config"]["llmConfig"]) == {"prompt", "apiKey"}
        # The cleared webhook really is gone: a finished call notifies nobody.
        call = client.calls.create(agent_id, "+15550100")
        emulator.rest.complete_call(str(call.call_id))
        assert emulator.rest.webhooks == []
        assert receiver.received == []

    def test_template(self, client: Client) -> None:
        template = client.agents.template()
        assert template.agent_id is None
        assert template.config.primary_language == "en-US"
        assert template.config.features is not None
        assert "fillers" in template.config.features


class TestCalls:
    def test_create_get_and_cancel(self, client: Client, emulator: Emulator) -> None:
        agent_id = make_agent(client)
        deadline = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
        call = client.calls.create(
            agent_id,
            "+15550100",
            additional_data={"orderId": "A1"},
            priority=3,
            call_deadline=deadline,
            timezone="Europe/Berlin",
        )
        assert call.status == CallStatus.QUEUED
        assert call.call_deadline == deadline
        (sent,) = bodies(emulator, "/calls", "POST")
        assert sent == {
            "endpoint": "+15550100",
            "additionalData": {"orderId": "A1"},
            "priority": 3,
            "callDeadline": "2030-01-02T03:04:05.000Z",
            "timezone": "Europe/Berlin",
        }
        assert emulator.rest.requests_to("/calls", "POST")[0].path == f"/calls?agentId={agent_id}"
        assert client.calls.get(str(call.call_id)).endpoint == "+15550100"
        client.calls.cancel(str(call.call_id))
        assert client.calls.get(str(call.call_id)).status == CallStatus.CANCELED
        with pytest.raises(ConflictError):
            client.calls.cancel(str(call.call_id))
        with pytest.raises(NotFoundError):
            client.calls.get("no-such-call")

    def test_bulk(self, client: Client) -> None:
        agent_id = make_agent(client)
        calls = client.calls.bulk(
            agent_id,
            [
                CallRequest("+15550101"),
                {"endpoint": "+15550102", "priority": 2},
                CallRequest("+15550103"),
            ],
        )
        assert [c.endpoint for c in calls] == ["+15550101", "+15550102", "+15550103"]
        assert calls[1].priority == 2
        with pytest.raises(ApiError) as info:
            client.calls.bulk(agent_id, [{"priority": 1}])
        assert info.value.status == 400

    def test_unknown_agent(self, client: Client) -> None:
        with pytest.raises(NotFoundError):
            client.calls.create("nobody", "+15550100")

    def test_queue_paging_and_statistics(self, client: Client, emulator: Emulator) -> None:
        agent_id = make_agent(client)
        other = make_agent(client, "Other")
        created = [client.calls.create(agent_id, f"+1555010{n}") for n in range(5)]
        client.calls.create(other, "+15550200")
        first = client.calls.queue(take=2, agent_id=agent_id)
        assert first.total == 5
        assert len(first.calls) == 2
        walked = list(client.calls.iter_queue(page_size=2, agent_id=agent_id))
        assert [c.call_id for c in walked] == [c.call_id for c in created]
        skips = [r.path for r in emulator.rest.requests_to("/calls/queue/list")][1:]
        assert [p.split("&")[0] for p in skips] == [
            "/calls/queue/list?skip=0",
            "/calls/queue/list?skip=2",
            "/calls/queue/list?skip=4",
        ]
        client.calls.cancel(str(created[0].call_id))
        emulator.rest.complete_call(str(created[1].call_id))
        assert client.calls.queue(agent_id=agent_id).total == 3
        finished = client.calls.queue(agent_id=agent_id, statuses=["Completed", "Canceled"])
        assert {c.status for c in finished.calls} == {"Completed", "Canceled"}
        stats = client.calls.statistics(agent_id=agent_id)
        assert stats.statuses["Queued"] == 3
        assert stats.statuses["Completed"] == 1
        assert stats.statuses["Canceled"] == 1
        assert client.calls.statistics().statuses["Queued"] == 4

    def test_a_call_is_seen_in_each_status_it_moves_through(
        self, client: Client, emulator: Emulator, receiver: Receiver
    ) -> None:
        """The emulator moves the call only when told to, so every status can be looked at."""
        agent_id = make_agent(client, resultWebhook={"url": receiver.url})
        call = client.calls.create(agent_id, "+15550100")
        call_id = str(call.call_id)
        seen = [call.status]

        queued = client.calls.get(call_id)
        seen.append(queued.status)
        assert not queued.finished
        assert client.calls.statistics(agent_id=agent_id).statuses["Queued"] == 1

        assert emulator.rest.advance_call(call_id) == CallStatus.RUNNING
        running = client.calls.get(call_id)
        seen.append(running.status)
        assert running.record_id == call_id
        assert running.completed_time is None
        assert client.misc.concurrency().active == 1
        assert [c.status for c in client.calls.queue(agent_id=agent_id).calls] == ["Running"]
        with pytest.raises(ConflictError):
            client.calls.cancel(call_id)  # only a call that has not started can be canceled
        assert list(client.call_results.search(call_ids=[call_id])) == []
        assert emulator.rest.webhooks == []

        assert emulator.rest.advance_call(call_id) == CallStatus.COMPLETED
        done = client.calls.get(call_id)
        seen.append(done.status)
        assert done.finished
        assert done.completed_time is not None
        assert client.misc.concurrency().active == 0
        assert client.calls.queue(agent_id=agent_id).total == 0
        (result,) = client.call_results.search(call_ids=[call_id])
        assert result.call_status == CallStatus.COMPLETED
        (delivery,) = emulator.rest.wait_webhooks(1)
        assert delivery.type == "CompletedWebHookPayload"

        assert seen == ["Queued", "Queued", "Running", "Completed"]
        assert emulator.rest.advance_call(call_id) == CallStatus.COMPLETED  # finished stays

    def test_a_users_cancel_fires_the_deadline_webhook(
        self, client: Client, emulator: Emulator, receiver: Receiver
    ) -> None:
        """Documented for DELETE /calls/{id} (API reference, cancel-call): the call becomes
        Canceled and the deadline webhook is sent, as for a missed deadline."""
        agent_id = make_agent(client, resultWebhook={"url": receiver.url})
        call = client.calls.create(agent_id, "+15550100", additional_data={"campaign": "c2"})
        client.calls.cancel(str(call.call_id))
        (delivery,) = emulator.rest.wait_webhooks(1)
        payload = webhooks.parse(delivery.payload)
        assert isinstance(payload, webhooks.CallDeadlineWebhook)
        assert payload.status == CallStatus.CANCELED
        assert payload.call_id == call.call_id
        assert payload.call_additional_data == {"campaign": "c2"}

    def test_a_queued_call_past_its_deadline_is_canceled_when_it_would_start(
        self, client: Client, emulator: Emulator
    ) -> None:
        agent_id = make_agent(client)
        past = datetime.now(timezone.utc) - timedelta(minutes=1)
        call = client.calls.create(agent_id, "+15550100", call_deadline=past)
        assert client.calls.get(str(call.call_id)).status == CallStatus.QUEUED
        assert emulator.rest.advance_call(str(call.call_id)) == CallStatus.CANCELED
        assert client.calls.get(str(call.call_id)).status == CallStatus.CANCELED

    def test_a_queued_call_runs_completes_and_fires_the_result_webhook(
        self, client: Client, emulator: Emulator, receiver: Receiver
    ) -> None:
        emulator.default_agent = ScriptedAgent(greeting="Hello, this is Ann.")
        agent_id = make_agent(
            client, resultWebhook={"url": receiver.url, "headers": {"X-Secret": "s3"}}
        )
        emulator.rest.call_step_seconds = 0.01
        call = client.calls.create(agent_id, "+15550100", additional_data={"campaign": "c1"})
        (delivery,) = emulator.rest.wait_webhooks(1)
        assert delivery.delivered
        assert client.calls.get(str(call.call_id)).status == CallStatus.COMPLETED
        (_path, headers, body) = receiver.received[0]
        assert headers["X-Secret"] == "s3"
        payload = webhooks.parse(body)
        assert isinstance(payload, webhooks.CompletedWebhook)
        assert payload.call_id == call.call_id
        assert payload.call_additional_data == {"campaign": "c1"}
        assert payload.transcription is not None
        assert payload.transcription[0].text == "Hello, this is Ann."
        (result,) = client.call_results.search(call_ids=[str(call.call_id)])
        assert result.call_status == "Completed"
        assert result.transcription == [{"speaker": "assistant", "text": "Hello, this is Ann."}]

    def test_a_failed_call_and_a_missed_deadline(
        self, client: Client, emulator: Emulator, receiver: Receiver
    ) -> None:
        agent_id = make_agent(client)
        emulator.rest.webhook_url = receiver.url
        failed = client.calls.create(agent_id, "+15550100")
        emulator.rest.complete_call(str(failed.call_id), status="Failed", error_message="busy")
        emulator.rest.call_step_seconds = 0.01
        past = datetime.now(timezone.utc) - timedelta(minutes=1)
        late = client.calls.create(agent_id, "+15550101", call_deadline=past)
        emulator.rest.wait_webhooks(2)
        kinds = {type(webhooks.parse(p)) for p in receiver.payloads()}
        assert kinds == {webhooks.FailedWebhook, webhooks.CallDeadlineWebhook}
        assert client.calls.get(str(late.call_id)).status == CallStatus.CANCELED
        failure = next(p for p in receiver.payloads() if p["type"] == "FailedWebHookPayload")
        assert failure["errorMessage"] == "busy"

    def test_webhook_5xx_is_retried_so_deliveries_can_repeat(
        self, client: Client, emulator: Emulator, receiver: Receiver
    ) -> None:
        agent_id = make_agent(client, resultWebhook={"url": receiver.url})
        emulator.rest.webhook_backoff = 0.001
        receiver.answers = [(503, {}), (200, {"ok": True})]
        call = client.calls.create(agent_id, "+15550100")
        emulator.rest.complete_call(str(call.call_id))
        (delivery,) = emulator.rest.wait_webhooks(1)
        assert delivery.statuses == [503, 200]
        assert len(receiver.received) == 2  # the same payload, twice
        assert receiver.payloads()[0] == receiver.payloads()[1]


class TestCallResults:
    def test_lazy_paging_over_three_pages(self, client: Client, emulator: Emulator) -> None:
        for n in range(7):
            emulator.rest.add_call_result("agent-a", created=f"2025-01-0{n + 1}T10:00:00Z")
        results = client.call_results.search(
            agent_ids=["agent-a"], page_size=3, sort_direction="Ascending"
        )
        assert emulator.rest.requests_to("/callresults") == []  # nothing fetched yet
        items = list(results)
        assert [r.created_time.day for r in items if r.created_time] == [1, 2, 3, 4, 5, 6, 7]
        sent = bodies(emulator, "/callresults/search", "POST")
        assert [(b["page"], b["size"]) for b in sent] == [(0, 3), (1, 3), (2, 3)]
        assert sent[0]["agentIds"] == ["agent-a"]
        pages = list(results.pages())
        assert [len(p.results) for p in pages] == [3, 3, 1]
        assert pages[0].total_count == 7
        assert pages[0].total_pages == 3

    def test_filters_sorting_and_aggregations(self, client: Client, emulator: Emulator) -> None:
        rest = emulator.rest
        rest.add_call_result(
            "a1", additional_data={"campaignId": "x"}, transcript=[("user", "Refund please")]
        )
        rest.add_call_result("a1", status="Failed", additional_data={"campaignId": "y"})
        rest.add_call_result("a2", additional_data={"campaignId": "x"}, endpoint="+15550100")
        found = list(client.call_results.search(additional_data={"campaignId": "x"}))
        assert {r.agent_id for r in found} == {"a1", "a2"}
        assert bodies(emulator, "/callresults", "POST")[-1]["additionalDataFilters"] == {
            "callAdditionalData.campaignId": "x"
        }
        assert [r.agent_id for r in client.call_results.search(call_statuses=["Failed"])] == ["a1"]
        assert len(list(client.call_results.search(search_text="refund"))) == 1
        assert len(list(client.call_results.search(endpoint="+15550100"))) == 1
        future = datetime.now(timezone.utc) + timedelta(days=1)
        assert list(client.call_results.search(from_date=future)) == []
        page = client.call_results.search(include_aggregations=True).first_page()
        assert page.aggregations is not None
        assert page.aggregations["statusCounts"] == {"Completed": 2, "Failed": 1}

    def test_max_pages_and_start_page(self, client: Client, emulator: Emulator) -> None:
        for _ in range(5):
            emulator.rest.add_call_result()
        assert len(list(client.call_results.search(page_size=2, max_pages=1))) == 2
        assert len(list(client.call_results.search(page_size=2, start_page=2))) == 1

    def test_bad_page_size(self, client: Client) -> None:
        with pytest.raises(ApiError) as info:
            list(client.call_results.search(page_size=5000))
        assert info.value.status == 400


class TestWebIntegrations:
    def test_create_list_get_update(self, client: Client, emulator: Emulator) -> None:
        agent_id = make_agent(client)
        created = client.web_integrations.create(
            agent_id,
            "Site widget",
            features={Features.ALLOW_WEB_CHAT: True, Features.ALLOW_WEB_CALL: False},
            origins=["https://shop.example"],
            tools=["checkOrderStatus"],
        )
        assert created.feature(Features.ALLOW_WEB_CHAT)
        assert not created.feature(Features.ALLOW_WEB_CALL)
        assert bodies(emulator, "/web-integrations", "POST")[0]["widgetAppearance"] == {
            "theme": "dark"
        }
        integration_id = str(created.integration_id)
        assert [i.integration_id for i in client.web_integrations.list()] == [integration_id]
        fetched = client.web_integrations.get(integration_id)
        assert fetched.origins == ["https://shop.example"]
        assert fetched.tools == ["checkOrderStatus"]
        client.web_integrations.create_token(integration_id, "t1")
        updated = client.web_integrations.update(integration_id, enabled=False, origins=[])
        assert updated.enabled is False
        assert updated.origins == []
        assert updated.tools == ["checkOrderStatus"]
        put = bodies(emulator, "/web-integrations", "PUT")[0]
        assert "tokens" not in put  # tokens never travel back
        assert put["name"] == "Site widget"
        assert emulator.rest.requests_to("/web-integrations", "PUT")[0].path == (
            f"/web-integrations?integrationId={integration_id}"
        )
        with pytest.raises(NotFoundError):
            client.web_integrations.get("nope")

    def test_none_set_on_an_integration_object_clears_the_field(
        self, client: Client, emulator: Emulator
    ) -> None:
        agent_id = make_agent(client)
        created = client.web_integrations.create(
            agent_id,
            "Site widget",
            origins=["https://shop.example"],
            tools=["checkOrderStatus"],
            description="for the shop",
        )
        integration_id = str(created.integration_id)
        emulator.rest.integrations[integration_id]["futureField"] = {"x": 1}
        integration = client.web_integrations.get(integration_id)
        integration.description = None
        integration.origins = None
        updated = client.web_integrations.update(integration)
        assert updated.description is None
        assert updated.origins is None
        assert updated.tools == ["checkOrderStatus"]
        put = bodies(emulator, "/web-integrations", "PUT")[-1]
        assert put["description"] is None
        assert put["origins"] is None
        assert put["futureField"] == {"x": 1}
        assert put["widgetAppearance"] == {"theme": "dark"}

    def test_validation(self, client: Client) -> None:
        agent_id = make_agent(client)
        with pytest.raises(ApiError) as info:
            client.web_integrations.create(agent_id, "bad/name!")
        assert info.value.status == 400
        with pytest.raises(NotFoundError):
            client.web_integrations.create("no-agent", "ok")

    def test_tokens_discover_and_revoke(self, client: Client, emulator: Emulator) -> None:
        agent_id = make_agent(client)
        integration = client.web_integrations.create(agent_id, "web")
        integration_id = str(integration.integration_id)
        expires = datetime(2031, 1, 1, tzinfo=timezone.utc)
        token = client.web_integrations.create_token(integration_id, "qa-run", expires_at=expires)
        assert token.token
        assert token.expires_at == expires
        assert "token=" not in repr(token)
        assert bodies(emulator, "/web-integrations/", "POST")[0] == {
            "name": "qa-run",
            "expiresAt": "2031-01-01T00:00:00.000Z",
        }
        no_expiry = client.web_integrations.create_token(integration_id, "forever")
        assert bodies(emulator, "/web-integrations/", "POST")[1] == {
            "name": "forever",
            "expiresAt": None,
        }
        listed = client.web_integrations.get(integration_id).tokens or []
        assert [t.name for t in listed] == ["qa-run", "forever"]
        assert all(t.token is None for t in listed)  # shown once only
        (grant,) = [g for g in emulator.tokens if g.token == token.token]
        assert grant.agent_id == agent_id
        assert grant.integration_id == integration_id
        discovered = client.web_integrations.discover(token.token)
        assert discovered.integration_id == integration_id
        assert discovered.agent_id == agent_id
        client.web_integrations.revoke_token(integration_id, str(no_expiry.token_id))
        assert no_expiry.token not in [g.token for g in emulator.tokens]
        with pytest.raises(NotFoundError):
            client.web_integrations.discover(str(no_expiry.token))
        with pytest.raises(NotFoundError):
            client.web_integrations.revoke_token(integration_id, str(no_expiry.token_id))

    def test_discover_needs_no_api_key(self, emulator: Emulator, client: Client) -> None:
        agent_id = make_agent(client)
        integration = client.web_integrations.create(agent_id, "web")
        token = client.web_integrations.create_token(str(integration.integration_id), "t")
        with Client(api_key="not-a-key", base_url=emulator.base_url) as anonymous:
            assert anonymous.web_integrations.discover(str(token.token)).agent_id == agent_id


class TestChats:
    def test_open_send_get_end(self, client: Client, emulator: Emulator) -> None:
        emulator.default_agent = ScriptedAgent(
            [Rule("order", ["Let me check.", "It shipped."])], greeting="Hi!"
        )
        agent_id = make_agent(client)
        session = client.chats.open(agent_id, ttl_seconds=600, additional_data={"userId": "u1"})
        assert [m.content for m in session.messages] == ["Hi!"]
        assert session.ttl_seconds == 600
        sent = bodies(emulator, "/chats", "POST")[0]
        assert sent == {
            "agent_id": agent_id,
            "channel": "web",
            "ttl_seconds": 600,
            "additional_data": {"userId": "u1"},
        }
        turn = client.chats.send(str(session.id), "Where is my order?")
        assert turn.text == "Let me check. It shipped."
        assert not turn.is_final
        full = client.chats.get(str(session.id))
        assert [m.role for m in full.messages] == ["assistant", "user", "assistant", "assistant"]
        ended = client.chats.end(str(session.id), note="done")
        assert ended.is_final
        assert ended.final_reason == "user_end"
        assert client.chats.end(str(session.id)).is_final  # idempotent
        with pytest.raises(ConflictError):
            client.chats.send(str(session.id), "hello?")
        (result,) = client.call_results.search(call_ids=[str(session.id)])
        assert result.call_type == "chat"

    def test_idempotency_key(self, client: Client, emulator: Emulator) -> None:
        session = client.chats.open(make_agent(client))
        first = client.chats.send(str(session.id), "one", idempotency_key="k1")
        again = client.chats.send(str(session.id), "one", idempotency_key="k1")
        assert first.messages == again.messages
        users = [m for m in client.chats.get(str(session.id)).messages if m.role == "user"]
        assert len(users) == 1

    def test_send_with_a_key_is_retried(self, client: Client, emulator: Emulator) -> None:
        session = client.chats.open(make_agent(client))
        emulator.rest.fail(503, path="/chats/")
        assert client.chats.send(str(session.id), "hi", idempotency_key="k").text == "You said: hi"
        emulator.rest.fail(503, path="/chats/")
        with pytest.raises(ApiError):
            client.chats.send(str(session.id), "hi again")  # no key: not repeated

    def test_the_agent_ends_the_chat(self, client: Client, emulator: Emulator) -> None:
        emulator.default_agent = ScriptedAgent([Rule("bye", "Goodbye!", end_conversation=True)])
        session = client.chats.open(make_agent(client))
        turn = client.chats.send(str(session.id), "bye")
        assert turn.is_final
        assert client.chats.get(str(session.id)).final_reason == "agent_finish"

    def test_validation_and_unknown_ids(self, client: Client) -> None:
        with pytest.raises(ApiError) as info:
            client.chats.open(make_agent(client), ttl_seconds=10)
        assert info.value.status == 400
        with pytest.raises(NotFoundError):
            client.chats.open("nobody")
        with pytest.raises(NotFoundError):
            client.chats.get("no-such-chat")

    def test_a_webhook_tool_runs_during_a_chat(
        self, client: Client, emulator: Emulator, receiver: Receiver
    ) -> None:
        emulator.default_agent = ScriptedAgent(
            [
                Rule(
                    "order",
                    "Status: {result[status]}",
                    tools=[CallTool("checkOrder", {"id": "A1"})],
                )
            ]
        )
        agent_id = make_agent(
            client, tools=[{"name": "checkOrder", "webhook": {"url": receiver.url}}]
        )
        receiver.answers = [(200, {"status": "shipped"})]
        session = client.chats.open(agent_id)
        turn = client.chats.send(str(session.id), "order?")
        assert turn.text == "Status: shipped"
        tool_message = turn.messages[0]
        assert tool_message.tool_calls is not None
        assert tool_message.tool_calls[0].name == "checkOrder"
        assert tool_message.tool_calls[0].response == {"status": "shipped"}
        payload = webhooks.parse(receiver.payloads()[0])
        assert isinstance(payload, webhooks.ToolWebhook)
        assert payload.arguments == {"id": "A1"}


class TestTextChat:
    def test_stateless_turns(self, client: Client, emulator: Emulator) -> None:
        emulator.default_agent = ScriptedAgent(greeting="Welcome.")
        agent_id = make_agent(client)
        first = client.text_chat.complete(agent_id)
        assert first.text == "Welcome."
        assert first.state
        history = [*first.messages, ChatMessage(role=LooseStr("user"), content="hello")]
        second = client.text_chat.complete(agent_id, history, state=first.state)
        assert second.text == "You said: hello"
        assert second.chat_id == first.chat_id
        sent = bodies(emulator, "/text-chat/completion", "POST")[1]
        assert sent["agent"] == {"id": agent_id}
        assert sent["messages"][-1] == {"role": "user", "content": "hello"}
        assert sent["state"] == first.state
        done = client.text_chat.complete(agent_id, history, state=first.state, finish=True)
        assert done.is_final
        with pytest.raises(ConflictError):
            client.text_chat.complete(agent_id, history, state=first.state)
        (result,) = client.call_results.search(call_ids=[str(first.call_id)])
        assert result.result["finishReason"] == "user_end"

    def test_session_helper(self, client: Client, emulator: Emulator) -> None:
        emulator.default_agent = ScriptedAgent([Rule("bye", "Bye!", end_conversation=True)])
        chat = client.text_chat.session(make_agent(client), additional_data={"k": "v"})
        assert chat.say("hi").text == "You said: hi"
        last = chat.say("bye")
        assert last.is_final
        assert chat.is_final
        assert [m.role for m in chat.messages] == ["user", "assistant", "user", "assistant"]
        assert bodies(emulator, "/text-chat/completion", "POST")[0]["additional_data"] == {"k": "v"}


class TestMisc:
    def test_concurrency(self, client: Client, emulator: Emulator) -> None:
        emulator.rest.concurrency_limit = 25
        agent_id = make_agent(client)
        call = client.calls.create(agent_id, "+15550100")
        with emulator.rest.lock:
            emulator.rest.calls[str(call.call_id)]["status"] = "Running"
        info = client.misc.concurrency()
        assert (info.active, info.concurrency) == (1, 25)

    def test_webhook_test(self, client: Client, receiver: Receiver) -> None:
        receiver.answers = [(200, {"status": "shipped"})]
        outcome = client.misc.test_webhook(
            receiver.url,
            webhook_type="ToolWebHookPayload",
            tool_name="checkOrder",
            tool_arguments={"id": "A1"},
            headers={"X-Secret": "s"},
        )
        assert outcome.success
        assert outcome.http_status == 200
        assert outcome.response_data == {"status": "shipped"}
        _path, headers, body = receiver.received[0]
        assert headers["X-Secret"] == "s"
        assert body["toolName"] == "checkOrder"
        receiver.answers = [(500, {})]
        assert not client.misc.test_webhook(receiver.url).success

    def test_verify_mcp(self, client: Client, emulator: Emulator) -> None:
        emulator.rest.mcp_servers["https://mcp.example/sse"] = [
            {"name": "search", "description": "Search docs"},
            {"name": "delete_all"},
        ]
        ok = client.misc.verify_mcp(
            "docs", "https://mcp.example/sse", transport="SSE", black_list_tools=["delete_all"]
        )
        assert ok.success
        assert [t["name"] for t in ok.available_tools or []] == ["search"]
        assert not client.misc.verify_mcp("other", "https://elsewhere.example").success


def test_reset_clears_the_rest_state(client: Client, emulator: Emulator) -> None:
    make_agent(client)
    emulator.rest.fail(500, times=None, path="/nothing")
    emulator.reset()
    assert client.agents.list() == []
    assert emulator.rest.faults == []
    assert emulator.rest.call_step_seconds == 0.5
