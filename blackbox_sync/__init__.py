"""blackbox_sync: a synchronous Python client for Dasha BlackBox conversational AI agents."""

from ._version import __version__

__all__ = ["__version__"]
