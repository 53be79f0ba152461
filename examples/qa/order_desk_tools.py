"""Client-side tool handlers for the example suite (``handler: order_desk_tools:...``).

The QA runner calls them with the agent's arguments as keywords when the agent asks for the
tool; whatever they return is sent back as the tool's result.
"""

from typing import Dict, Union

PRICES = {"SKU-42": 20.0, "SKU-7": 5.5}


def lookup_price(sku: str) -> Dict[str, Union[str, float]]:
    """The list price of ``sku``."""
    return {"sku": sku, "price": PRICES.get(sku, 10.0)}


def apply_discount(sku: str, price: str) -> Dict[str, Union[str, float]]:
    """Ten percent off (``price`` arrives as text: the agent filled it into a template)."""
    return {"sku": sku, "final": round(float(price) * 0.9, 2)}
