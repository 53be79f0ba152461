"""Layer 4, the public conversation: the :class:`Conversation` facade, its callbacks, client-side
tools and reconnect policy, all built on :mod:`blackbox_sync.transport` and
:mod:`blackbox_sync.protocol`."""

from blackbox_sync.conversation.facade import Conversation
from blackbox_sync.conversation.reconnect import ReconnectPolicy

__all__ = ["Conversation", "ReconnectPolicy"]
