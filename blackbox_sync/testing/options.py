"""How the emulated service behaves where the live one is configurable, regional or unknown."""

from typing import Tuple

import attrs


@attrs.define
class EmulatorOptions:
    """Server behaviour; a connection reads a copy when it opens, so changes apply to new ones."""

    max_message_size: int = 64 * 1024
    """Largest client frame, in UTF-8 bytes, before ``Too large message`` (live limit unknown)."""
    init_timeout: float = 10.0
    """Seconds to wait for ``initialize`` before ``Init message not received``."""
    close_timeout: float = 2.0
    """Seconds to wait for the client's close frame after the emulator sent its own."""
    send_opened_event: bool = False
    """Also send ``event opened`` after ``connection``, as the RU region does."""
    connection_id_keys: Tuple[str, ...] = ("recordId",)
    """Keys of ``event connection``'s ``data`` that carry the conversation id (live RU: jobId)."""
    voice_end_drops_connection: bool = True
    """End a ``webCall`` by dropping the TCP connection (the client sees 1006, as live)."""
