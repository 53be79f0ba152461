"""The order tools, written once and used two ways: as client-side tools of the visitors'
WebSocket conversations (``conversation.tool``) and behind the webhook endpoint, for agents whose
tool is a webhook.

The agent calls ``checkOrderStatus`` with ``{"orderNumber": ...}``, so those are the function's
name and parameter.
"""

from typing import Dict

# A stand-in for your order database.
_ORDERS: Dict[str, str] = {"ORD-12345": "shipped", "ORD-777": "being packed"}


def checkOrderStatus(orderNumber: str) -> Dict[str, str]:  # camelCase: the wire names
    """The status of an order; unknown numbers say so rather than fail."""
    status = _ORDERS.get(orderNumber.strip().upper(), "not found")
    return {"orderNumber": orderNumber, "status": status}
