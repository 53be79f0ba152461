"""A Flask view for BlackBox webhooks (needs Flask; the rest of the library does not).

::

    from blackbox_sync.rest.webhooks import WebhookHandler
    from blackbox_sync.contrib.flask import webhook_view

    hooks = WebhookHandler()

    @hooks.tool("checkOrderStatus")
    def check_order(orderNumber: str) -> dict:
        return {"status": "shipped"}

    app.add_url_rule("/blackbox/webhook", view_func=webhook_view(hooks), methods=["POST"])
"""

import importlib
import json
from typing import Any, Callable

from blackbox_sync.rest.webhooks import WebhookHandler


def webhook_view(handler: WebhookHandler, *, name: str = "blackbox_webhook") -> Callable[[], Any]:
    """A Flask view function that feeds each request to ``handler`` and returns its JSON answer."""
    flask = importlib.import_module("flask")  # imported here so Flask stays optional

    def view() -> Any:
        request = flask.request
        status, body = handler.handle(request.get_data(), dict(request.headers))
        text = json.dumps(body, ensure_ascii=False, default=str)
        return flask.Response(text, status=status, mimetype="application/json")

    view.__name__ = name  # Flask keys endpoints by function name
    return view
