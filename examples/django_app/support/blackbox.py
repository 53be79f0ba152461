"""The process-wide BlackBox objects of the site: one registry of visitor conversations, and one
REST ``Client`` when the site uses an API key.

Both are made on first use from ``settings.BLACKBOX`` and shared by every request thread:

* a :class:`blackbox_sync.Client` keeps no per-request state, so one per process is enough;
* a :class:`blackbox_sync.Conversation` is safe to use from any thread, and two requests of one
  visitor asking at once are answered one after the other (see ``conversations.py``).

Conversations live in this process. Under a server with several worker processes, pin visitors
to a worker (sticky sessions), or a visitor who lands on another worker starts a new conversation.
When ``settings.BLACKBOX`` changes (``override_settings`` in tests), the objects are closed and
made again.
"""

import atexit
import threading
from typing import Any, Dict, Optional

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

import blackbox_sync as bb
from blackbox_sync.contrib.conversations import ConversationRegistry
from blackbox_sync.rest import webhooks

from . import order_tools

_lock = threading.Lock()
_registry: Optional[ConversationRegistry] = None
_client: Optional[bb.Client] = None


def config() -> Dict[str, Any]:
    """``settings.BLACKBOX``."""
    value: Dict[str, Any] = settings.BLACKBOX
    return value


def registry() -> ConversationRegistry:
    """The site's conversation registry, made on first use."""
    global _registry
    with _lock:
        if _registry is None:
            _registry = ConversationRegistry(
                open_conversation, talk_first=bool(config().get("TALK_FIRST"))
            )
            atexit.register(_registry.close_all)
        return _registry


def client() -> bb.Client:
    """The site's REST client (needs ``BLACKBOX["API_KEY"]``), made on first use."""
    global _client
    with _lock:
        if _client is None:
            _client = bb.Client(api_key=config()["API_KEY"], base_url=config().get("BASE_URL"))
        return _client


def open_conversation(visitor: str) -> bb.Conversation:
    """A new conversation for ``visitor``: with the token, or with the shared client's key."""
    blackbox = config()
    options: Dict[str, Any] = {
        "additional_data": {"visitorId": visitor, "channel": "support-page"},
        "quiet_period": float(blackbox.get("QUIET_PERIOD", 1.5)),
    }
    if blackbox.get("TOKEN"):
        conversation = bb.Conversation(
            token=blackbox["TOKEN"], base_url=blackbox.get("BASE_URL"), **options
        )
    elif blackbox.get("API_KEY") and blackbox.get("AGENT_ID"):
        conversation = client().conversation(blackbox["AGENT_ID"], **options)
    else:
        raise bb.UsageError("set BLACKBOX_TOKEN, or BLACKBOX_API_KEY and BLACKBOX_AGENT_ID")
    conversation.tool("checkOrderStatus", order_tools.checkOrderStatus)
    return conversation


def webhook_handler() -> webhooks.WebhookHandler:
    """The handler behind ``/blackbox/webhook``: the same tool functions, behind a secret."""
    hooks = webhooks.WebhookHandler(
        required_headers={"X-Webhook-Secret": str(config()["WEBHOOK_SECRET"])}
    )
    hooks.tool("checkOrderStatus")(order_tools.checkOrderStatus)
    return hooks


def close() -> None:
    """Close every conversation and the client; the next use makes them again."""
    global _registry, _client
    with _lock:
        registry, _registry = _registry, None
        client, _client = _client, None
    if registry is not None:
        registry.close_all()
    if client is not None:
        client.close()


@receiver(setting_changed)
def _settings_changed(setting: str, **kwargs: Any) -> None:
    if setting == "BLACKBOX":
        close()
