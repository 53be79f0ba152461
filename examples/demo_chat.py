"""Chat with a scripted agent on the bundled emulator: a greeting, ask(), a client-side tool.

Run it with no account and no network:  python examples/demo_chat.py
"""

from typing import Dict

import blackbox_sync as bb
from blackbox_sync.testing import CallTool, Emulator, Rule, ScriptedAgent

AGENT = ScriptedAgent(
    greeting="Hi! This is the order desk. How can I help?",
    rules=[
        Rule(
            r"(?P<order>ORD-\d+)",
            regex=True,
            delay=0.4,
            fillers=["um"],
            tools=[CallTool("checkOrderStatus", {"orderNumber": "{match[order]}"})],
            reply=["Thanks for waiting.", "Order {match[order]} is {result[status]}."],
        ),
        Rule("bye", reply="Goodbye!", end_conversation=True),
    ],
    default="Could you give me your order number?",
)


def main() -> None:
    with Emulator(agent=AGENT) as emulator:
        conversation = bb.Conversation(
            token=emulator.token, base_url=emulator.base_url, quiet_period=0.3
        )

        @conversation.tool("checkOrderStatus")
        def check_order_status(orderNumber: str) -> Dict[str, str]:
            return {"orderNumber": orderNumber, "status": "shipped"}

        @conversation.on(bb.ToolRequest)
        def show_tool_request(request: bb.ToolRequest) -> None:
            print(f"   [tool request] {request.tool_name}({request.args})")

        with conversation:
            print("agent:", conversation.wait_for_reply(timeout=10).text)
            for question in ["Hello", "Where is my order ORD-12345?", "Thanks, bye"]:
                print("you:  ", question)
                reply = conversation.ask(question, timeout=10)
                print("agent:", reply.text, f"   ({reply.reason}, {reply.latency or 0:.3f} s)")
        result = conversation.result
        print("result:", result.status if result else "none")


if __name__ == "__main__":
    main()
