"""The defaults the whole package shares, and the environment variables it reads, defined once.

The grouped options of a conversation (``bb.Timeouts``, ``bb.Limits``) keep their defaults on
their own fields; ``bb.TurnRule``, the CLI, the REST client and the URL helpers take theirs, and
the names of the environment variables, from here.
"""

from typing import Tuple

BASE_URL_ENV = "BLACKBOX_BASE_URL"
"""The service's base URL, when none is given."""
TOKEN_ENV = "BLACKBOX_TOKEN"
"""A web integration token (the production WebSocket endpoint)."""
API_KEY_ENV = "BLACKBOX_API_KEY"
"""An API key (the REST API, and the dev WebSocket endpoint)."""

DEFAULT_BASE_URL = "https://blackbox.dasha.ai"
"""The public service."""

DEFAULT_QUIET_PERIOD = 1.5
"""Seconds of quiet after the agent's last activity before its turn counts as complete."""
DEFAULT_FILLERS: Tuple[str, ...] = ("um",)
"""Assistant texts that are only fillers: neither reply text nor activity."""
