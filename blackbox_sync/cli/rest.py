"""``blackbox-sync agents``, ``calls`` and ``results``: the REST basics, as tables or, with
``--json``, the service's JSON."""

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Sequence

from blackbox_sync.cli.chat import parse_data
from blackbox_sync.cli.common import FAILED, USAGE, Run
from blackbox_sync.errors import BlackBoxError
from blackbox_sync.settings import API_KEY_ENV

if TYPE_CHECKING:
    from blackbox_sync.rest import Client
    from blackbox_sync.rest.model import Model


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


def _raw(value: "Model") -> Dict[str, Any]:
    """The service's JSON for a model (its ``raw``), for ``--json``."""
    return value.raw if value.raw else value.to_wire()


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


def add_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
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
