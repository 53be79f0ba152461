"""The order tools, written once and used three ways.

* on the website's WebSocket conversations, as client-side tools (``conversation.tool``);
* on the webhook endpoint, for phone calls and agents whose tool is a webhook;
* from the terminal: ``blackbox-sync chat --emulator --agent examples/agents/order-support.yaml
  --tools examples/flask_app/order_tools.py``.

Every public function here is a tool named after the function: the agent calls
``checkOrderStatus`` with ``{"orderNumber": ...}``, so that is the function's name and parameter.
"""

from typing import Dict

# A stand-in for your order database.
_ORDERS: Dict[str, str] = {"ORD-12345": "shipped", "ORD-777": "being packed"}


def checkOrderStatus(orderNumber: str) -> Dict[str, str]:  # camelCase: the wire names
    """The status of an order; unknown numbers say so rather than fail."""
    status = _ORDERS.get(orderNumber.strip().upper(), "not found")
    return {"orderNumber": orderNumber, "status": status}
