"""The REST API end to end: an agent, a web integration, a token, a chat, the call history.

With no argument it runs against the bundled emulator (no account, no network):

    python examples/rest_quickstart.py

With ``--live`` it uses the real service and your key (``BLACKBOX_API_KEY``, optionally
``BLACKBOX_BASE_URL``); it creates an agent and an integration and deletes the agent at the end.
"""

import sys
import uuid
from contextlib import ExitStack

import blackbox_sync as bb
from blackbox_sync.rest import Client


def run(client: Client, base_url: str) -> None:
    # 1. An agent. Config keys this library does not model are kept and sent back untouched.
    agent = client.agents.create(
        "Quickstart order desk",
        {
            "primaryLanguage": "en-US",
            "llmConfig": {
                "vendor": "openai",
                "model": "gpt-4.1-mini",
                "prompt": "Help with orders.",
            },
        },
    )
    agent_id = str(agent.agent_id)
    print(f"agent {agent_id} v{agent.version}")
    agent = client.agents.update(agent_id, config={"llmConfig": {"prompt": "Be brief."}})
    print(f"updated to v{agent.version}")

    # 2. The production path: an integration and a token minted server-side with the API key.
    integration = client.web_integrations.create(agent_id, "Quickstart widget")
    token = client.web_integrations.create_token(
        str(integration.integration_id), name=f"quickstart-{uuid.uuid4().hex[:8]}"
    )
    assert token.token is not None  # the value is only in this answer: hand it to the client

    # 3. A conversation with just the token, then the call history.
    run_id = uuid.uuid4().hex
    with bb.Conversation(
        token=token.token, base_url=base_url, additional_data={"runId": run_id}
    ) as conversation:
        reply = conversation.ask("Where is my order ORD-12345?", timeout=30)
        print("agent:", reply.text)
    for result in client.call_results.search(agent_ids=[agent_id], page_size=20, max_pages=1):
        print(f"call {result.call_id}: {result.call_status}, {result.duration_seconds} s")

    # 4. REST chat: every answer says whether the conversation is over (is_final).
    chat = client.text_chat.session(agent_id)
    turn = chat.say("Hello!")
    print("text chat:", turn.text, "(final)" if turn.is_final else "")

    print("concurrency:", client.misc.concurrency())
    client.web_integrations.revoke_token(str(integration.integration_id), str(token.token_id))
    client.agents.delete(agent_id)


def main() -> None:
    with ExitStack() as stack:
        if "--live" in sys.argv:
            client = stack.enter_context(Client())
            run(client, client.base_url)
            return
        from blackbox_sync.testing import Emulator, Rule, ScriptedAgent

        agent = ScriptedAgent([Rule("order", "Order ORD-12345 shipped yesterday.")])
        emulator = stack.enter_context(Emulator(agent=agent))
        client = stack.enter_context(Client(api_key=emulator.api_key, base_url=emulator.base_url))
        run(client, emulator.base_url)


if __name__ == "__main__":
    main()
