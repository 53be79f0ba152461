"""The ``blackbox-sync`` command (also ``python -m blackbox_sync``): the parser and ``main``.

Subcommands, one module each: ``chat`` (:mod:`.chat`, an interactive chat with an agent or the
emulator), ``emulator`` (:mod:`.emulator`, serve the local emulator), ``agents``, ``calls`` and
``results`` (:mod:`.rest`, the REST basics, ``--json`` for machine-readable output) and, when the
QA runner is installed, ``qa`` (:mod:`.qa`).

Credentials come from the environment (``BLACKBOX_TOKEN``, ``BLACKBOX_API_KEY``,
``BLACKBOX_BASE_URL``) or from options; prefer the environment, since other users of the
machine can read a process's command line. No subcommand ever prints a token or an API key.
"""

import argparse
import logging
import sys
from typing import Optional, Sequence

from blackbox_sync import __version__
from blackbox_sync.cli import chat, emulator, rest
from blackbox_sync.cli.common import USAGE, Run, run_quietly

__all__ = ["build_parser", "main", "run_quietly"]


def _add_qa(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Let the QA runner add its ``qa`` subcommand, if this installation has one."""
    try:
        # Imported here, not at the top: it needs the qa extra (see build_parser).
        from blackbox_sync.cli.qa import register
    except ModuleNotFoundError as exc:
        if exc.name in ("blackbox_sync.qa", "blackbox_sync.cli.qa"):
            return  # a version without the QA runner
        _add_missing(commands, "qa", exc)
        return
    except ImportError as exc:
        _add_missing(commands, "qa", exc)
        return
    register(commands)


def _add_missing(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]", name: str, exc: Exception
) -> None:
    """A subcommand whose dependencies are missing: it explains instead of vanishing."""

    def run(args: argparse.Namespace) -> int:
        print(f"blackbox-sync {name} cannot load: {exc}", file=sys.stderr)
        return USAGE

    parser = commands.add_parser(name, help=f"(unavailable: {exc})", add_help=False)
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    parser.set_defaults(run=run)


_LEVELS = ("debug", "info", "warning", "error")


def build_parser(argv: Optional[Sequence[str]] = None) -> argparse.ArgumentParser:
    """The argument parser with every subcommand.

    ``qa`` comes from another module; it is loaded only when ``argv`` may need it (the ``qa``
    command itself, or help), so the other commands start without importing it.
    """
    parser = argparse.ArgumentParser(
        prog="blackbox-sync",
        description="Chat with BlackBox agents, run the local emulator, and use the REST API.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level",
        choices=_LEVELS,
        default=None,
        help="print the library's log (secrets masked) to stderr at this level",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chat.add_command(commands)
    emulator.add_command(commands)
    rest.add_commands(commands)
    if argv is None or _command_of(argv) in (None, "qa"):
        _add_qa(commands)
    return parser


def _command_of(argv: Sequence[str]) -> Optional[str]:
    """The subcommand named in ``argv`` (``None`` if there is none yet)."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--log-level":
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def _setup_logging(level: Optional[str]) -> None:
    if level is None:
        return
    # Only our own logger: the library masks secrets in everything it logs.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("blackbox_sync")
    logger.addHandler(handler)
    logger.setLevel(level.upper())


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)

    def command() -> int:
        args = build_parser(arguments).parse_args(arguments)
        _setup_logging(args.log_level)
        run: Run = args.run
        return int(run(args))

    return run_quietly(command)


if __name__ == "__main__":
    sys.exit(main())
