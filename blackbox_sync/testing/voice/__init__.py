"""The emulator's voice side: WebRTC calls answered with scripted audio."""

from blackbox_sync.testing.voice.calls import EmulatorVoice, Spoken, Utterance, VoiceCallRecord

__all__ = ["EmulatorVoice", "Spoken", "Utterance", "VoiceCallRecord"]
