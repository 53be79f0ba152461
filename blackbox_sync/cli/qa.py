"""The ``qa`` subcommand: ``run``, ``validate``, ``report`` and ``schema``.

``register(subparsers)`` adds it to the ``blackbox-sync`` command; ``python -m blackbox_sync.qa``
runs it alone. Credentials come from options or the environment (``BLACKBOX_TOKEN``,
``BLACKBOX_API_KEY``, ``BLACKBOX_BASE_URL``) and are never printed.
"""

import argparse
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Set

from blackbox_sync.cli.common import run_quietly
from blackbox_sync.qa.report import EXIT_INTERRUPTED, EXIT_OK, EXIT_REPORTS, EXIT_USAGE, RunReport
from blackbox_sync.qa.sources import SuiteFileError
from blackbox_sync.qa.stopping import RunInterrupted
from blackbox_sync.qa.store import RERUN_CHOICES
from blackbox_sync.settings import API_KEY_ENV, BASE_URL_ENV, TOKEN_ENV

DESCRIPTION = """Run scripted conversations against a BlackBox agent (or the bundled emulator),
check the replies, and write JUnit XML, HTML, CSV, Markdown and streamed JSONL results.
Exit codes: 0 all passed, 1 a check failed, 2 bad usage or suite file, 3 an infrastructure
error, 4 both failures and errors, 5 a report could not be written, 130 interrupted (Ctrl-C)."""


def register(
    subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]",
) -> argparse.ArgumentParser:
    """Add ``qa`` (with ``run``, ``validate``, ``report``, ``schema``) to an argparse
    subparsers object; each sets ``run=<function(args) -> int>`` as its default."""
    qa: argparse.ArgumentParser = subparsers.add_parser(
        "qa", help="run QA suites against an agent", description=DESCRIPTION
    )
    commands = qa.add_subparsers(dest="qa_command", required=True, metavar="COMMAND")
    _add_run(commands)
    check = commands.add_parser("validate", help="check suite files and report every problem")
    check.add_argument("suites", nargs="+", metavar="SUITE")
    check.set_defaults(run=_validate)
    report = commands.add_parser("report", help="write reports from a results.jsonl")
    report.add_argument("results", metavar="RESULTS_JSONL")
    _add_outputs(report)
    report.set_defaults(run=_report)
    schema = commands.add_parser("schema", help="print the suite file JSON Schema")
    schema.set_defaults(run=_schema)
    return qa


def _add_run(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    run = commands.add_parser(
        "run",
        help="run suites and write reports",
        description="Run suites (.yaml, .yml, .json or .csv) and write reports.",
    )
    run.add_argument("suites", nargs="+", metavar="SUITE")
    target = run.add_argument_group("target")
    target.add_argument("--target", choices=("emulator", "live"), default="emulator")
    target.add_argument("--agent", help="emulator: scripted agent file (overrides the suite's)")
    target.add_argument("--base-url", help="live: service URL (default $BLACKBOX_BASE_URL)")
    target.add_argument("--token", help="live: web integration token (default $BLACKBOX_TOKEN)")
    target.add_argument("--api-key", help="live: API key (default $BLACKBOX_API_KEY)")
    target.add_argument("--integration-id", help="live: mint a token per conversation")
    target.add_argument("--agent-id", help="live: use the development endpoint (experimental)")
    target.add_argument("--origin", help="live: Origin header for the WebSocket handshake")
    pace = run.add_argument_group("pace")
    pace.add_argument("-j", "--concurrency", type=int, default=8, help="conversations in flight")
    pace.add_argument("--rate", type=float, help="conversations started per second (max)")
    pace.add_argument("--retries", type=int, help="retries after infrastructure errors")
    pace.add_argument("--repeat", type=int, help="repeat every conversation N times")
    pace.add_argument("--quiet-ms", type=float, help="end-of-turn quiet period for every turn")
    pace.add_argument(
        "--talk-first",
        action="store_true",
        default=None,
        help="the agent greets first: wait for it before the first message",
    )
    pace.add_argument("--dask", metavar="ADDRESS", help="run on a dask.distributed scheduler")
    pick = run.add_argument_group("selection")
    pick.add_argument("-k", "--id", action="append", default=[], help="conversation id glob")
    pick.add_argument("--tag", action="append", default=[], help="run conversations with a tag")
    pick.add_argument("--resume", metavar="JSONL", help="skip conversations already in JSONL")
    pick.add_argument(
        "--rerun", choices=sorted(RERUN_CHOICES), help="with --resume: run these again"
    )
    grade = run.add_argument_group("judge")
    grade.add_argument("--judge", metavar="MODULE:FUNCTION", help="judge for judge checks")
    grade.add_argument("--judge-cache", metavar="JSONL", help="keep judge verdicts in this file")
    _add_outputs(run)
    run.add_argument("--jsonl", help="stream results to this file (default: OUT_DIR/results.jsonl)")
    run.add_argument(
        "--record-audio",
        metavar="DIR",
        help="save the agent's audio of each voice turn here (default: OUT_DIR/audio)",
    )
    run.add_argument("--progress", choices=("auto", "bar", "lines", "none"), default="auto")
    run.set_defaults(run=_run)


def _add_outputs(parser: argparse.ArgumentParser) -> None:
    out = parser.add_argument_group("reports")
    out.add_argument("-o", "--out-dir", help="write every report format into this folder")
    out.add_argument("--junit", help="JUnit XML file")
    out.add_argument("--html", help="HTML report file")
    out.add_argument("--csv", help="CSV file")
    out.add_argument("--markdown", help="Markdown summary file")


REPORT_OPTIONS = ("junit", "html", "csv", "markdown")


def _output_problem(args: argparse.Namespace, jsonl: Optional[str] = None) -> Optional[str]:
    """Why an output path given on the command line cannot be written, checked before the run
    (a run can take an hour; a typo in ``--html`` should not cost it)."""
    paths = [(f"--{name}", getattr(args, name), False) for name in REPORT_OPTIONS]
    paths += [("--out-dir", args.out_dir, True), ("--jsonl", jsonl, True)]
    for option, path, makes_folders in paths:
        problem = _unwritable(Path(path), option == "--out-dir", makes_folders) if path else None
        if problem:
            return f"{option} {path}: {problem}"
    return None


def _unwritable(path: Path, folder: bool, makes_folders: bool) -> Optional[str]:
    """What stops ``path`` (a file, or a ``folder`` to fill) from being written, or None;
    ``makes_folders``: missing parent folders are created."""
    if path.exists() and path.is_dir() != folder:
        return "is a folder, not a file" if not folder else "is a file, not a folder"
    parent = path if folder else path.parent
    while makes_folders and not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.exists():
        return f"the folder {str(parent)!r} does not exist"
    if not parent.is_dir():
        return f"{str(parent)!r} is not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot write in {str(parent)!r}"
    if path.exists() and not os.access(path, os.W_OK):
        return "cannot write it"
    return None


def _saved_reports(
    report: RunReport, args: argparse.Namespace, jsonl: Optional[str] = None
) -> Optional[List[str]]:
    """Write the reports; on failure say what failed and where the results still are."""
    try:
        return _write_reports(report, args)
    except OSError as exc:
        kept = f"; the results are in {jsonl}" if jsonl else ""
        print(f"error: could not write the reports: {exc}{kept}", file=sys.stderr)
        return None


def _write_reports(report: RunReport, args: argparse.Namespace) -> List[str]:
    written: Dict[str, Path] = report.write_dir(args.out_dir) if args.out_dir else {}
    report.write(junit=args.junit, html=args.html, csv=args.csv, markdown=args.markdown)
    paths = [str(p) for p in written.values()]
    paths += [p for p in (args.junit, args.html, args.csv, args.markdown) if p]
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary and os.environ.get("CI"):
        with open(summary, "a", encoding="utf-8") as out:
            out.write(report.markdown())
    return paths


def _live_target(args: argparse.Namespace, suites: List[Any]) -> Any:
    from blackbox_sync.qa.targets import LiveTarget

    given = {
        key for key in ("base_url", "integration_id", "agent_id", "origin") if getattr(args, key)
    }
    live = _shared_live_settings(suites, given)
    return LiveTarget(
        base_url=args.base_url or live.get("base_url") or os.environ.get(BASE_URL_ENV),
        token=args.token or os.environ.get(TOKEN_ENV),
        api_key=args.api_key or os.environ.get(API_KEY_ENV),
        integration_id=args.integration_id or live.get("integration_id"),
        agent_id=args.agent_id or live.get("agent_id"),
        origin=args.origin or live.get("origin"),
    )


def _shared_live_settings(suites: List[Any], given: Set[str]) -> Dict[str, str]:
    """The suites' ``live`` settings. One live target serves them all, so they must agree on
    each setting the command line does not give (``given``)."""
    merged: Dict[str, str] = {}
    for suite in suites:
        for key, value in suite.live.items():
            if key not in given and merged.setdefault(key, value) != value:
                raise ValueError(
                    f"the suites disagree on live {key} ({merged[key]!r} and {value!r}): "
                    f"run them separately, or give --{key.replace('_', '-')}"
                )
    return merged


def _run(args: argparse.Namespace) -> int:
    from blackbox_sync.qa.loader import load_suite
    from blackbox_sync.qa.runner import run

    try:
        suites = [load_suite(path) for path in args.suites]
        target: Any = "emulator" if args.target == "emulator" else _live_target(args, suites)
    except (SuiteFileError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    jsonl: Optional[str] = args.jsonl or args.resume
    if jsonl is None and args.out_dir:
        jsonl = str(Path(args.out_dir) / "results.jsonl")
    problem = _output_problem(args, jsonl)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    audio = args.record_audio or (Path(args.out_dir) / "audio" if args.out_dir else None)
    # Absolute, so the paths in the results still lead to the files from another folder.
    record_dir = str(Path(audio).resolve()) if audio else None
    executor = None
    client: Any = None
    if args.dask:
        distributed: Any = importlib.import_module("distributed")  # optional, untyped
        client = distributed.Client(args.dask)
        executor = client.get_executor()
    try:
        report = run(
            suites,
            target=target,
            agent=args.agent,
            executor=executor,
            max_in_flight=args.concurrency,
            rate=args.rate,
            judge=args.judge,
            judge_cache=args.judge_cache,
            jsonl=jsonl,
            resume=args.resume,
            rerun=args.rerun,
            ids=args.id,
            tags=args.tag,
            quiet_ms=args.quiet_ms,
            retries=args.retries,
            repeat=args.repeat,
            talk_first=args.talk_first,
            progress=args.progress,
            record_dir=record_dir,
        )
    except RunInterrupted as stop:
        print(_interrupted_line(stop, jsonl), file=sys.stderr, flush=True)
        _saved_reports(stop.report, args, jsonl)  # what finished, in every format asked for
        return EXIT_INTERRUPTED
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if client is not None:
            client.close()
    paths = _saved_reports(report, args, jsonl)
    counts = report.counts
    print(
        f"{len(report.cases)} conversations: {counts['passed']} passed, {counts['failed']} "
        f"failed, {counts['error']} errors ({report.wall_s:.1f} s)"
    )
    for path in ([jsonl] if jsonl else []) + (paths or []):
        print(f"  {path}")
    return report.exit_code if paths is not None else EXIT_REPORTS


def _interrupted_line(stop: RunInterrupted, jsonl: Optional[str]) -> str:
    """One line on what an interrupted run did and how to finish it."""
    counts = stop.report.counts
    done = (
        f"interrupted: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['error']} errors; {stop.unfinished} not finished"
    )
    if jsonl is None:
        return f"{done} (no results file was written)"
    return f"{done}; --resume {jsonl} runs them"


def _validate(args: argparse.Namespace) -> int:
    from blackbox_sync.qa.loader import load_suite

    status = EXIT_OK
    for path in args.suites:
        try:
            suite = load_suite(path)
        except SuiteFileError as exc:
            print(exc, file=sys.stderr)
            status = EXIT_USAGE
            continue
        print(f"{path}: OK, suite {suite.name!r}, {len(suite.cases)} conversations")
    return status


def _report(args: argparse.Namespace) -> int:
    problem = _output_problem(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = RunReport.from_jsonl(args.results)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    paths = _saved_reports(report, args, args.results)
    for path in paths or []:
        print(path)
    return EXIT_OK if paths is not None else EXIT_REPORTS


def _schema(args: argparse.Namespace) -> int:
    from blackbox_sync.qa.schema import SUITE_SCHEMA

    print(json.dumps(SUITE_SCHEMA, indent=2))
    return EXIT_OK


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m blackbox_sync.qa COMMAND ...``: the ``qa`` subcommand alone."""
    parser = argparse.ArgumentParser(prog="python -m blackbox_sync", description=DESCRIPTION)
    register(parser.add_subparsers(dest="command", required=True))

    def command() -> int:
        args = parser.parse_args(["qa", *(sys.argv[1:] if argv is None else argv)])
        return int(args.run(args))

    return run_quietly(command)
