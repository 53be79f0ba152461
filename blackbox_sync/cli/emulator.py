"""``blackbox-sync emulator``: serve the local emulator until Ctrl-C."""

import argparse
import sys

from blackbox_sync.cli.common import USAGE, need_emulator_extra


def _run(args: argparse.Namespace) -> int:
    try:
        from blackbox_sync.testing.emulator import PortUnavailableError, serve
    except ImportError as exc:  # aiohttp is an optional extra
        return need_emulator_extra(exc)
    try:
        serve(
            host=args.host,
            port=args.port,
            agent_file=args.agent,
            token=args.token,
            api_key=args.api_key,
        )
    except PortUnavailableError as exc:
        print(
            f"blackbox-sync emulator: {exc}; pick another with --port PORT "
            "(--port 0 picks a free one)",
            file=sys.stderr,
        )
        return USAGE
    return 0


def add_command(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    emulator = commands.add_parser(
        "emulator",
        help="serve the local BlackBox emulator",
        description="Serve the local emulator (REST and WebSocket on one port) until Ctrl-C. "
        "It prints its base URL, token and API key: throwaway credentials of its own.",
    )
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
    emulator.set_defaults(run=_run)
