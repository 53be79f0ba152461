"""Voice call errors (importable without aiortc); defined in :mod:`blackbox_sync.errors`."""

from blackbox_sync.errors import VoiceError, VoiceTimeout

__all__ = ["VoiceError", "VoiceTimeout"]
