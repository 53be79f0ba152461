"""The ``blackbox-sync`` command: ``chat``, the REST commands, ``emulator`` and ``qa``."""

from blackbox_sync.cli.app import main

__all__ = ["main"]
