"""Receive BlackBox webhooks in Flask: answer a webhook tool, log finished calls.

    pip install flask
    python examples/rest_webhooks_flask.py        # serves http://127.0.0.1:5000/blackbox/webhook

``PORT`` picks another port and ``WEBHOOK_SECRET`` the shared secret the requests must carry.

Point an agent at it: a tool ``{"name": "checkOrderStatus", "webhook": {"url": ..., "headers":
{"X-Webhook-Secret": ...}}}`` in ``config.tools`` and ``config.resultWebhook`` for results. The
live service only calls public HTTPS URLs; the emulator calls any URL, so this runs locally too.
Deliveries can repeat (the service retries on 5xx and timeouts): keep handlers idempotent.
"""

import logging
import os
from typing import Dict, Set

from flask import Flask

from blackbox_sync.contrib.flask import webhook_view
from blackbox_sync.rest import webhooks

hooks = webhooks.WebhookHandler(
    required_headers={"X-Webhook-Secret": os.environ.get("WEBHOOK_SECRET", "change-me")}
)
seen_calls: Set[str] = set()


@hooks.tool("checkOrderStatus")
def check_order_status(orderNumber: str) -> Dict[str, str]:  # camelCase: the wire name
    """The agent's arguments arrive as keyword arguments; the return value is the tool result."""
    return {"orderNumber": orderNumber, "status": "shipped"}


@hooks.on(webhooks.CompletedWebhook)
def call_completed(payload: webhooks.CompletedWebhook) -> None:
    if str(payload.call_id) in seen_calls:  # a repeated delivery
        return
    seen_calls.add(str(payload.call_id))
    logging.info("call %s finished after %s s", payload.call_id, payload.duration_seconds)


app = Flask(__name__)
app.add_url_rule("/blackbox/webhook", view_func=webhook_view(hooks), methods=["POST"])

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    app.run(port=int(os.environ.get("PORT", "5000")))
