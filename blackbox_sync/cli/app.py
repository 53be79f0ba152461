"""The ``blackbox-sync`` command (also ``python -m blackbox_sync``).

Subcommands: ``chat`` (an interactive chat with an agent or the emulator), ``emulator`` (serve
the local emulator), ``agents``, ``calls`` and ``results`` (the REST basics, ``--json`` for
machine-readable output) and, when the QA runner is installed, ``qa``.

Credentials come from the environment (``BLACKBOX_TOKEN``, ``BLACKBOX_API_KEY``,
``BLACKBOX_BASE_URL``) or from options; prefer the environment, since other users of the
machine can read a process's command line. No subcommand ever prints a token or an API key.
"""

import argparse
import importlib
import json
import logging
import os
import sys
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Sequence

from blackbox_sync._version import __version__
from blackbox_sync.errors import BlackBoxError, UsageError
from blackbox_sync.settings import API_KEY_ENV, DEFAULT_QUIET_PERIOD, TOKEN_ENV

if TYPE_CHECKING:
    from blackbox_sync.rest import Client

# Exit statuses: 0 done, 1 the service or the connection failed, 2 a usage error (also a busy
# emulator port), 130 Ctrl-C, 141 the output pipe closed (``| head``).
FAILED = 1
USAGE = 2

Run = Callable[[argparse.Namespace], int]


def _need_emulator_extra(exc: ImportError) -> int:
    print(
        f"the emulator needs its extra: pip install 'blackbox-sync[emulator]' ({exc})",
        file=sys.stderr,
    )
    return USAGE


# --- emulator -----------------------------------------------------------------------------------


def _emulator(args: argparse.Namespace) -> int:
    try:
        from blackbox_sync.testing.emulator import PortUnavailableError, serve
    except ImportError as exc:  # aiohttp is an optional extra
        return _need_emulator_extra(exc)
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


def _add_emulator(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
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
    emulator.set_defaults(run=_emulator)


# --- chat ---------------------------------------------------------------------------------------


def _chat(args: argparse.Namespace) -> int:
    from blackbox_sync.cli.chat import ChatRepl, load_tools, parse_data
    from blackbox_sync.conversation.facade import Conversation

    try:
        tools: Dict[str, Callable[..., Any]] = {}
        for spec in args.tools:
            tools.update(load_tools(spec))
        data = parse_data(args.data)
    except UsageError as exc:
        print(f"blackbox-sync chat: {exc}", file=sys.stderr)
        return USAGE
    options: Dict[str, Any] = {
        "additional_data": data or None,
        "quiet_period": args.quiet_period,
        "origin": args.origin,
    }
    with ExitStack() as stack:
        if args.emulator:
            try:
                from blackbox_sync.testing import ScriptedAgent
                from blackbox_sync.testing.emulator import Emulator
            except ImportError as exc:
                return _need_emulator_extra(exc)
            try:
                agent = ScriptedAgent.from_file(args.agent) if args.agent else None
            except (OSError, ValueError) as exc:  # AgentFileError is a ValueError
                print(f"blackbox-sync chat: {exc}", file=sys.stderr)
                return USAGE
            emulator = stack.enter_context(Emulator(agent))
            if agent is not None and agent.greeting is not None:
                args.talk_first = True  # this agent greets first: wait for it
            label = f" with {args.agent}" if args.agent else ""
            print(f"Started the local emulator on {emulator.base_url}{label}.", flush=True)
            options.update(token=emulator.token, base_url=emulator.base_url)
        else:
            credentials = _chat_credentials(args)
            if isinstance(credentials, int):
                return credentials
            options.update(credentials, base_url=args.base_url)
        try:
            conversation = Conversation(**options)
        except BlackBoxError as exc:
            print(f"blackbox-sync chat: {exc}", file=sys.stderr)
            return USAGE
        repl = ChatRepl(
            conversation,
            tools=tools,
            ask_timeout=args.timeout,
            show_partials=args.show_partials,
            verbose=args.verbose,
            talk_first=args.talk_first,
            secrets=[str(options.get(k) or "") for k in ("token", "api_key")],
        )
        return repl.run()
    return 0  # pragma: no cover - mypy cannot see that the with-block always returns


def _chat_credentials(args: argparse.Namespace) -> "Dict[str, Any] | int":
    token = args.token or None
    api_key = args.api_key or None
    if token and api_key:
        print("blackbox-sync chat: give --token or --api-key, not both", file=sys.stderr)
        return USAGE
    if not token and not api_key:
        token = os.environ.get(TOKEN_ENV) or None
        api_key = None if token else (os.environ.get(API_KEY_ENV) or None)
    if token:
        return {"token": token}
    if api_key:
        if not args.agent_id:
            print("blackbox-sync chat: an API key needs --agent-id", file=sys.stderr)
            return USAGE
        return {"api_key": api_key, "agent_id": args.agent_id}
    print(
        "blackbox-sync chat: no credentials: set BLACKBOX_TOKEN (or pass --token), "
        "set BLACKBOX_API_KEY with --agent-id, or try --emulator",
        file=sys.stderr,
    )
    return USAGE


def _add_chat(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    chat = commands.add_parser(
        "chat",
        help="chat with an agent (or the local emulator) in the terminal",
        description="Chat with an agent: its texts are shown as they arrive, tool requests are "
        "answered by the functions of --tools. Commands: /history, /terminate, /quit, /help. "
        f"Credentials: ${TOKEN_ENV} (a web integration token), or ${API_KEY_ENV} with "
        "--agent-id (the development endpoint), or --emulator.",
    )
    source = chat.add_argument_group("where to chat")
    source.add_argument(
        "--token", default=None, help=f"web integration token (default: ${TOKEN_ENV})"
    )
    source.add_argument(
        "--api-key", default=None, help=f"API key for the development endpoint (${API_KEY_ENV})"
    )
    source.add_argument("--agent-id", default=None, help="the agent, with an API key")
    source.add_argument(
        "--base-url", default=None, help="service URL (default: $BLACKBOX_BASE_URL or the public)"
    )
    source.add_argument(
        "--emulator", action="store_true", help="start a local emulator and chat with it"
    )
    source.add_argument(
        "--agent", default=None, help="scripted agent file for --emulator (.yaml or .json)"
    )
    chat.add_argument(
        "--tools",
        action="append",
        default=[],
        metavar="MODULE",
        help="a module (name or .py file) whose public functions answer tool requests",
    )
    chat.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="additionalData for the agent (repeatable; JSON values allowed)",
    )
    chat.add_argument("--origin", default=None, help="Origin header for the handshake")
    chat.add_argument(
        "--quiet-period",
        type=float,
        default=DEFAULT_QUIET_PERIOD,
        help=f"seconds of quiet that end the agent's turn (default: {DEFAULT_QUIET_PERIOD:g})",
    )
    chat.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for a reply (default: 60)"
    )
    chat.add_argument(
        "--show-partials", action="store_true", help="show partial (streaming) texts too"
    )
    chat.add_argument(
        "--talk-first",
        action="store_true",
        help="the agent greets first: wait for its greeting before the first prompt "
        "(automatic with an --emulator agent that has a greeting)",
    )
    chat.add_argument("--verbose", action="store_true", help="print every frame received")
    chat.set_defaults(run=_chat)


# --- REST: agents, calls, results ---------------------------------------------------------------


def _client(args: argparse.Namespace) -> "Client":
    from blackbox_sync.rest import Client, RetryPolicy

    return Client(
        api_key=args.api_key,
        base_url=args.base_url,
        timeout=args.http_timeout,
        retry=RetryPolicy(max_retries=args.retries),
    )


def _rest(action: Callable[["Client", argparse.Namespace], Any]) -> Run:
    """Wrap a REST action: open the client, print its answer, map errors to exit statuses."""

    def run(args: argparse.Namespace) -> int:
        from blackbox_sync.errors import ApiError, ProtocolError
        from blackbox_sync.rest import ApiConnectionError

        try:
            with _client(args) as client:
                action(client, args)
        except (ApiError, ApiConnectionError, ProtocolError) as exc:  # the service failed
            print(f"blackbox-sync {args.command}: {exc}", file=sys.stderr)
            return FAILED
        except BlackBoxError as exc:  # no API key, a bad base URL, a bad --data
            print(f"blackbox-sync {args.command}: {exc}", file=sys.stderr)
            return USAGE
        return 0

    return run


def _raw(value: Any) -> Any:
    """The service's JSON for a model (its ``raw``), for ``--json``."""
    raw = getattr(value, "raw", None)
    return raw if raw else getattr(value, "to_wire", lambda: value)()


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _cell(value: Any, width: int = 40) -> str:
    text = "-" if value is None or value == "" else str(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    cells = [[_cell(v) for v in row] for row in rows]
    if not cells:
        print("(none)")
        return
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


def _print_fields(fields: Sequence["tuple[str, Any]"]) -> None:
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        print(f"{name.ljust(width)}  {_cell(value, 200)}")


def _agents_list(client: "Client", args: argparse.Namespace) -> None:
    agents = client.agents.list(skip=args.skip, take=args.take)
    if args.json:
        _print_json([_raw(a) for a in agents])
        return
    _print_table(
        ["AGENT ID", "NAME", "ENABLED", "VERSION", "UPDATED"],
        [[a.agent_id, a.name, a.is_enabled, a.version, a.last_update_time] for a in agents],
    )


def _agents_get(client: "Client", args: argparse.Namespace) -> None:
    agent = client.agents.get(args.agent_id)
    if args.json:
        _print_json(_raw(agent))
        return
    config = agent.config
    llm = config.llm_config
    _print_fields(
        [
            ("agent id", agent.agent_id),
            ("name", agent.name),
            ("enabled", agent.is_enabled),
            ("version", agent.version),
            ("description", agent.description),
            ("language", config.primary_language),
            ("model", llm and " ".join(filter(None, [llm.vendor, llm.model]))),
            ("tools", ", ".join(str(t.name) for t in config.tools or []) or None),
            ("created", agent.created_time),
            ("updated", agent.last_update_time),
        ]
    )


def _call_row(call: Any) -> List[Any]:
    return [call.call_id, call.status, call.endpoint, call.agent_id, call.created_time]


CALL_HEADERS = ["CALL ID", "STATUS", "ENDPOINT", "AGENT ID", "CREATED"]


def _calls_list(client: "Client", args: argparse.Namespace) -> None:
    queue = client.calls.queue(
        skip=args.skip, take=args.take, agent_id=args.agent_id, statuses=args.status or None
    )
    if args.json:
        _print_json(_raw(queue))
        return
    _print_table(CALL_HEADERS, [_call_row(c) for c in queue.calls])
    if queue.total is not None and queue.total > len(queue.calls):
        print(f"({len(queue.calls)} of {queue.total}; use --skip/--take for more)")


def _calls_get(client: "Client", args: argparse.Namespace) -> None:
    call = client.calls.get(args.call_id)
    if args.json:
        _print_json(_raw(call))
        return
    _print_fields(
        [
            ("call id", call.call_id),
            ("status", call.status),
            ("endpoint", call.endpoint),
            ("agent id", call.agent_id),
            ("created", call.created_time),
            ("completed", call.completed_time),
            ("inspector", call.inspector_url),
        ]
    )


def _calls_create(client: "Client", args: argparse.Namespace) -> None:
    from blackbox_sync.cli.chat import parse_data

    call = client.calls.create(
        args.agent_id, args.endpoint, additional_data=parse_data(args.data) or None
    )
    if args.json:
        _print_json(_raw(call))
        return
    _print_table(CALL_HEADERS, [_call_row(call)])


def _calls_cancel(client: "Client", args: argparse.Namespace) -> None:
    client.calls.cancel(args.call_id)
    if args.json:
        _print_json({"callId": args.call_id, "canceled": True})
    else:
        print(f"canceled {args.call_id}")


def _calls_stats(client: "Client", args: argparse.Namespace) -> None:
    stats = client.calls.statistics(agent_id=args.agent_id)
    if args.json:
        _print_json(_raw(stats))
        return
    _print_table(["STATUS", "CALLS"], sorted(stats.statuses.items()))


def _results(client: "Client", args: argparse.Namespace) -> None:
    search = client.call_results.search(
        agent_ids=args.agent_id or None,
        call_statuses=args.status or None,
        call_ids=args.call_id or None,
        search_text=args.search,
        page_size=min(args.limit, 100),
    )
    results = []
    for result in search:
        results.append(result)
        if len(results) >= args.limit:
            break
    if args.json:
        _print_json([_raw(r) for r in results])
        return
    _print_table(
        ["CALL ID", "STATUS", "TYPE", "SECONDS", "COMPLETED", "ENDPOINT"],
        [
            [
                r.call_id,
                r.call_status,
                r.call_type,
                r.duration_seconds,
                r.completed_time,
                r.endpoint,
            ]
            for r in results
        ],
    )
    if args.transcript:
        for r in results:
            print(f"\n{r.call_id}:")
            for entry in r.transcription or []:
                if isinstance(entry, dict):
                    print(f"  {entry.get('speaker', '?')}: {entry.get('text', '')}")


def _rest_options() -> argparse.ArgumentParser:
    """Options every REST subcommand takes."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the service's JSON")
    common.add_argument(
        "--api-key", default=None, help=f"API key (default: ${API_KEY_ENV}; prefer the variable)"
    )
    common.add_argument(
        "--base-url", default=None, help="service URL (default: $BLACKBOX_BASE_URL or the public)"
    )
    common.add_argument(
        "--http-timeout", type=float, default=30.0, help="seconds per request (default: 30)"
    )
    common.add_argument(
        "--retries",
        type=int,
        default=3,
        help="retries of a read after a transient failure (default: 3)",
    )
    return common


def _add_rest(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    common = _rest_options()

    agents = commands.add_parser("agents", help="list and show agents (REST)")
    agent_commands = agents.add_subparsers(dest="action", required=True)
    listing = agent_commands.add_parser("list", parents=[common], help="list agents")
    listing.add_argument("--skip", type=int, default=0)
    listing.add_argument("--take", type=int, default=100)
    listing.set_defaults(run=_rest(_agents_list))
    show = agent_commands.add_parser("get", parents=[common], help="show one agent")
    show.add_argument("agent_id")
    show.set_defaults(run=_rest(_agents_get))

    calls = commands.add_parser("calls", help="schedule, list, show and cancel calls (REST)")
    call_commands = calls.add_subparsers(dest="action", required=True)
    queue = call_commands.add_parser("list", parents=[common], help="the call queue")
    queue.add_argument("--agent-id", default=None)
    queue.add_argument("--status", action="append", default=[], help="repeatable")
    queue.add_argument("--skip", type=int, default=0)
    queue.add_argument("--take", type=int, default=20)
    queue.set_defaults(run=_rest(_calls_list))
    get = call_commands.add_parser("get", parents=[common], help="show one call")
    get.add_argument("call_id")
    get.set_defaults(run=_rest(_calls_get))
    create = call_commands.add_parser("create", parents=[common], help="schedule a call")
    create.add_argument("--agent-id", required=True)
    create.add_argument("--endpoint", required=True, help="phone number or SIP URI")
    create.add_argument("--data", action="append", default=[], metavar="KEY=VALUE")
    create.set_defaults(run=_rest(_calls_create))
    cancel = call_commands.add_parser("cancel", parents=[common], help="cancel a scheduled call")
    cancel.add_argument("call_id")
    cancel.set_defaults(run=_rest(_calls_cancel))
    stats = call_commands.add_parser("stats", parents=[common], help="calls per status")
    stats.add_argument("--agent-id", default=None)
    stats.set_defaults(run=_rest(_calls_stats))

    results = commands.add_parser(
        "results", parents=[common], help="search finished calls and conversations (REST)"
    )
    results.add_argument("--agent-id", action="append", default=[], help="repeatable")
    results.add_argument("--status", action="append", default=[], help="repeatable")
    results.add_argument("--call-id", action="append", default=[], help="repeatable")
    results.add_argument("--search", default=None, help="full-text search")
    results.add_argument("--limit", type=int, default=20, help="at most this many (default: 20)")
    results.add_argument("--transcript", action="store_true", help="print each transcript")
    results.set_defaults(run=_rest(_results))


# --- qa (from blackbox_sync.qa, when installed) -------------------------------------------------


def _add_qa(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Let the QA runner add its ``qa`` subcommand, if this installation has one."""
    try:
        qa_cli = importlib.import_module("blackbox_sync.cli.qa")
    except ModuleNotFoundError as exc:
        if exc.name in ("blackbox_sync.qa", "blackbox_sync.cli.qa"):
            return  # a version without the QA runner
        _add_missing(commands, "qa", exc)
        return
    except ImportError as exc:
        _add_missing(commands, "qa", exc)
        return
    register = getattr(qa_cli, "register", None)
    if callable(register):
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


# --- the parser -----------------------------------------------------------------------------------

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
    _add_chat(commands)
    _add_emulator(commands)
    _add_rest(commands)
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
