"""A Django view for BlackBox webhooks (needs Django; the rest of the library does not).

::

    # urls.py
    from blackbox_sync.contrib.django import webhook_view
    from myapp.hooks import hooks  # a blackbox_sync.rest.webhooks.WebhookHandler

    urlpatterns = [path("blackbox/webhook", webhook_view(hooks))]

The view is CSRF-exempt (the service cannot send a CSRF token) and accepts POST only; protect it
with ``WebhookHandler(required_headers=...)`` and a secret header in the agent's webhook config.
"""

import importlib
from typing import Any, Callable

from blackbox_sync.rest.webhooks import WebhookHandler


def webhook_view(handler: WebhookHandler) -> Callable[[Any], Any]:
    """A Django view function that feeds each POST to ``handler`` and returns its JSON answer."""
    http = importlib.import_module("django.http")  # imported here so Django stays optional
    csrf = importlib.import_module("django.views.decorators.csrf")

    def view(request: Any) -> Any:
        if request.method != "POST":
            return http.HttpResponseNotAllowed(["POST"])
        status, body = handler.handle(request.body, dict(request.headers))
        return http.JsonResponse(body, status=status, safe=False)

    wrapped: Callable[[Any], Any] = csrf.csrf_exempt(view)
    return wrapped
