"""Layer 3, the thread-backed I/O shell: one WebSocket connection and its reader thread."""
