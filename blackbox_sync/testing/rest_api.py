"""The emulator's REST routes (PROTOCOL.md §8); filled in by the REST work."""

from typing import Any


def add_routes(app: Any, emulator: Any) -> None:
    """Register the REST endpoints on the emulator's aiohttp application."""
