"""What the ``blackbox-sync`` commands share: credentials' variables, exit statuses, and how a
command ends (Ctrl-C, a closed output pipe)."""

import argparse
import os
import sys
from typing import Callable

# Exit statuses: 0 done, 1 the service or the connection failed, 2 a usage error (also a busy
# emulator port), 130 Ctrl-C, 141 the output pipe closed (``| head``).
FAILED = 1
USAGE = 2

Run = Callable[[argparse.Namespace], int]
"""How a command runs: its parsed arguments in, its exit status out."""

INTERRUPTED = 130
"""Ctrl-C: the shells' 128 + SIGINT."""
BROKEN_PIPE = 141
"""The reader of our output went away (``| head``): the shells' 128 + SIGPIPE, no message."""


def run_quietly(command: Callable[[], int]) -> int:
    """Run ``command`` the way Unix tools end: Ctrl-C is status 130 and a closed output pipe
    (``blackbox-sync ... | head``) is a silent 141, without a traceback."""
    try:
        status = command()
        sys.stdout.flush()  # a pipe closed early fails here, not in interpreter shutdown
        return status
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:
        # Point stdout at /dev/null: the interpreter flushes it once more on the way out.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return BROKEN_PIPE


def need_emulator_extra(exc: ImportError) -> int:
    """Say which extra the emulator needs; the usage exit status."""
    print(
        f"the emulator needs its extra: pip install 'blackbox-sync[emulator]' ({exc})",
        file=sys.stderr,
    )
    return USAGE
