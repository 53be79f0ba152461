"""Voice call errors (importable without aiortc)."""

from blackbox_sync.errors import BlackBoxError, OperationTimeout


class VoiceError(BlackBoxError):
    """The voice call could not be set up or broke (bad offer, ICE or DTLS failure)."""


class VoiceTimeout(VoiceError, OperationTimeout):
    """A blocking voice call method ran out of time."""
