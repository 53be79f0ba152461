"""The ``blackbox-sync`` command (also ``python -m blackbox_sync``)."""

import argparse
import sys
from typing import List, Optional

from ._version import __version__


def _emulator(args: argparse.Namespace) -> int:
    try:
        from .testing.emulator import serve
    except ImportError as exc:  # aiohttp is an optional extra
        print(
            f"the emulator needs its extra: pip install 'blackbox-sync[emulator]' ({exc})",
            file=sys.stderr,
        )
        return 2
    serve(
        host=args.host,
        port=args.port,
        agent_file=args.agent,
        token=args.token,
        api_key=args.api_key,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="blackbox-sync", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    emulator = commands.add_parser("emulator", help="serve the local BlackBox emulator")
    emulator.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    emulator.add_argument(
        "--port", type=int, default=8080, help="port (default: 8080; 0 picks a free one)"
    )
    emulator.add_argument(
        "--agent", default=None, help="scripted agent file (.yaml, .yml or .json)"
    )
    emulator.add_argument(
        "--token", default=None, help="web integration token to accept (default: random)"
    )
    emulator.add_argument("--api-key", default=None, help="API key to accept (default: random)")
    emulator.set_defaults(run=_emulator)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
