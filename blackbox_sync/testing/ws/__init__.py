"""The emulator's WebSocket side: one session per conversation, and the frames it builds."""
