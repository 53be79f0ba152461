"""REST and WebSocket together: agents and tokens made over REST drive real conversations."""

from typing import Iterator

import pytest

import blackbox_sync as bb
from blackbox_sync.rest import Client, RetryPolicy, webhooks
from blackbox_sync.testing import Emulator, Rule, ScriptedAgent

QUIET = 0.25


@pytest.fixture
def client(emulator: Emulator) -> Iterator[Client]:
    policy = RetryPolicy(backoff=0.001)
    with Client(api_key=emulator.api_key, base_url=emulator.base_url, retry=policy) as c:
        yield c


def test_production_path_from_agent_to_call_result(client: Client, emulator: Emulator) -> None:
    agent = client.agents.create("Orders", {"primaryLanguage": "en-US"})
    agent_id = str(agent.agent_id)
    emulator.set_agent(agent_id, ScriptedAgent([Rule("order", ["Checking.", "It shipped."])]))
    integration = client.web_integrations.create(agent_id, "Shop widget")
    token = client.web_integrations.create_token(str(integration.integration_id), "e2e")
    assert token.token is not None

    with bb.Conversation(
        token=token.token,
        base_url=emulator.base_url,
        additional_data={"runId": "e2e-1"},
        quiet_period=QUIET,
    ) as conv:
        reply = conv.ask("Where is my order?", timeout=5)
        assert reply.text == "Checking. It shipped."
        record_id = conv.record_id
        result = conv.terminate(timeout=5)
    assert result is not None
    assert record_id

    (found,) = client.call_results.search(agent_ids=[agent_id])
    assert found.call_id == record_id
    assert found.call_type == "chat"
    assert found.call_status == "Completed"
    assert found.call_additional_data == {"runId": "e2e-1"}
    assert found.transcription == [
        {"speaker": "user", "text": "Where is my order?"},
        {"speaker": "assistant", "text": "Checking."},
        {"speaker": "assistant", "text": "It shipped."},
    ]
    by_data = list(client.call_results.search(additional_data={"runId": "e2e-1"}))
    assert [r.call_id for r in by_data] == [record_id]
    (conversation,) = emulator.conversations
    assert conversation.integration_id == integration.integration_id


def test_dev_endpoint_conversation(client: Client, emulator: Emulator) -> None:
    agent_id = str(client.agents.create("Dev", {}).agent_id)
    emulator.set_agent(agent_id, ScriptedAgent(default="dev agent: {user}"))
    with client.conversation(agent_id, additional_data={"k": "v"}, quiet_period=QUIET) as conv:
        assert conv.ask("ping", timeout=5).text == "dev agent: ping"
    (record,) = emulator.conversations
    assert record.dev
    assert record.agent_id == agent_id
    assert record.additional_data == {"k": "v"}
    assert emulator.api_key not in repr(conv)


def test_revoked_token_and_disabled_integration_are_refused(
    client: Client, emulator: Emulator
) -> None:
    agent_id = str(client.agents.create("A", {}).agent_id)
    integration = client.web_integrations.create(agent_id, "web")
    integration_id = str(integration.integration_id)
    revoked = client.web_integrations.create_token(integration_id, "old")
    client.web_integrations.revoke_token(integration_id, str(revoked.token_id))
    with pytest.raises(bb.AuthenticationError, match="Invalid token"):
        bb.Conversation(token=str(revoked.token), base_url=emulator.base_url).connect(timeout=5)

    token = client.web_integrations.create_token(integration_id, "new")
    client.web_integrations.update(integration_id, enabled=False)
    with pytest.raises(bb.AuthenticationError, match="not enabled"):
        bb.Conversation(token=str(token.token), base_url=emulator.base_url).connect(timeout=5)

    client.web_integrations.update(integration_id, enabled=True, origins=["https://shop.example"])
    with pytest.raises(bb.AuthenticationError, match="Origin not allowed"):
        bb.Conversation(token=str(token.token), base_url=emulator.base_url).connect(timeout=5)
    with bb.Conversation(
        token=str(token.token), base_url=emulator.base_url, origin="https://shop.example"
    ) as conv:
        assert conv.record_id


def test_a_finished_websocket_conversation_fires_the_result_webhook(
    client: Client, emulator: Emulator
) -> None:
    # Nobody listens on the URL: the emulator still records what it tried to deliver.
    emulator.rest.webhook_retries = 0
    url = "http://127.0.0.1:9/blackbox-hook"
    agent_id = str(client.agents.create("A", {"resultWebhook": {"url": url}}).agent_id)
    conv = client.conversation(agent_id, quiet_period=QUIET)
    with conv:
        conv.ask("hello", timeout=5)
    (delivery,) = emulator.rest.wait_webhooks(1)
    assert delivery.url == url
    assert not delivery.delivered
    payload = webhooks.parse(delivery.payload)
    assert isinstance(payload, webhooks.CompletedWebhook)
    assert payload.agent_id == agent_id
    assert payload.call_id == conv.record_id
    assert payload.transcription is not None
    assert [e.text for e in payload.transcription] == ["hello", "You said: hello"]


def test_an_agent_scripted_over_rest(client: Client, emulator: Emulator) -> None:
    """``config.emulatorAgent`` (emulator only) scripts the agent without Python access."""
    script = {"rules": [{"match": "hours", "reply": "9 to 5."}], "default": "Pardon?"}
    agent_id = str(client.agents.create("Hours", {"emulatorAgent": script}).agent_id)
    with client.conversation(agent_id, quiet_period=QUIET) as conv:
        assert conv.ask("opening hours?", timeout=5).text == "9 to 5."
    # The config patch merges objects and replaces everything else (here: the rules list).
    client.agents.update(agent_id, config={"emulatorAgent": {"rules": [], "default": "Changed."}})
    assert client.text_chat.session(agent_id).say("hours").text == "Changed."
    with pytest.raises(bb.ApiError) as info:
        client.agents.create("Bad", {"emulatorAgent": {"rulez": []}})
    assert info.value.status == 400
    assert "rulez" in info.value.detail
