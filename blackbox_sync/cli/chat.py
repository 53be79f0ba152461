"""``blackbox-sync chat``: the command, and the interactive chat behind it.

Agent texts are printed by callbacks on the conversation's reader thread as they arrive, so a
split reply shows up chunk by chunk; the prompt comes back once ``ask()`` says the turn is
complete. Tool requests are answered by plain Python functions (``--tools``). Commands:
``/history``, ``/terminate``, ``/quit``, ``/help``; end of input (Ctrl-D, or the end of a piped
script) terminates the conversation politely.

Nothing here prints a token or an API key: every line goes through :meth:`Console.show` or
:meth:`Console.release`, which mask the session's credentials and any ``token=`` value, since
the server's texts (errors, close reasons, replies) may echo them.
"""

import argparse
import functools
import importlib
import importlib.util
import inspect
import json
import os
import sys
import threading
from contextlib import ExitStack
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO

from blackbox_sync.cli.common import USAGE, need_emulator_extra
from blackbox_sync.conversation.facade import Conversation
from blackbox_sync.errors import (
    AskTimeout,
    BlackBoxError,
    ConnectionClosedError,
    OperationTimeout,
    ServerError,
    UsageError,
)
from blackbox_sync.protocol.messages import (
    ConversationResult,
    Event,
    IncomingChatMessage,
    TextMessage,
    ToolRequest,
    ToolResponse,
)
from blackbox_sync.protocol.state import Phase
from blackbox_sync.redact import redact_text
from blackbox_sync.settings import API_KEY_ENV, DEFAULT_QUIET_PERIOD, TOKEN_ENV

PROMPT = "you> "
HELP = """\
Type a message and press Enter. Commands:
  /history     the conversation so far
  /terminate   end the conversation, show its result and leave
  /quit        leave at once (closes the connection)
  /help        this text
Start a line with // to send a message that begins with /. Ctrl-D ends the conversation."""

_MAX_SHOWN = 300  # characters of a tool's arguments or result printed on one line


class ToolsError(UsageError):
    """A ``--tools`` module could not be loaded, or has no public functions."""


def load_tools(spec: str) -> Dict[str, Callable[..., Any]]:
    """The tools of a ``--tools`` module: a file path (``tools.py``) or a module name.

    Every public function defined in the module (not imported into it) is a tool, named by its
    function name; a module-level ``__all__`` narrows the set.
    """
    module = _import_tools(spec)
    names = getattr(module, "__all__", None)
    tools: Dict[str, Callable[..., Any]] = {}
    for name, value in vars(module).items():
        if names is not None:
            if name in names and callable(value):
                tools[name] = value
        elif (
            not name.startswith("_")
            and inspect.isfunction(value)
            and value.__module__ == module.__name__
        ):
            tools[name] = value
    if not tools:
        raise ToolsError(f"{spec}: no public functions to use as tools")
    return tools


def _import_tools(spec: str) -> ModuleType:
    if spec.endswith(".py") or os.sep in spec or (os.altsep and os.altsep in spec):
        path = os.path.abspath(spec)
        if not os.path.isfile(path):
            raise ToolsError(f"--tools: no such file: {spec}")
        name = "_blackbox_tools_" + os.path.splitext(os.path.basename(path))[0]
        loader_spec = importlib.util.spec_from_file_location(name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise ToolsError(f"--tools: cannot load {spec}")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module  # dataclasses and pickling look the module up by name
        loader_spec.loader.exec_module(module)
        return module
    # A console script's sys.path starts at its own bin directory: look in the working
    # directory too, the way `python -m` would.
    added = os.getcwd() not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name == spec.split(".")[0]:
            raise ToolsError(f"--tools: no module named {spec!r}") from None
        raise
    finally:
        if added:
            sys.path.remove(os.getcwd())


def _short(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."


class Console:
    """Prints lines from any thread without mangling the line the user is typing.

    While the main thread waits in ``input()``, a line printed by the reader thread clears the
    prompt line, prints, and redraws the prompt with what was typed so far (from readline).
    """

    def __init__(self, out: TextIO, interactive: bool, secrets: Sequence[str] = ()) -> None:
        self.out = out
        self.interactive = interactive
        self._secrets = tuple(s for s in secrets if s)
        self._lock = threading.Lock()
        self._reading = False
        self._held: Optional[List[str]] = None
        self._readline: Optional[ModuleType] = None
        if interactive:
            try:  # line editing and in-session history; absent on some platforms
                import readline

                self._readline = readline
            except ImportError:
                pass

    @property
    def reading(self) -> bool:
        """True while the main thread waits for the user's next line."""
        with self._lock:
            return self._reading

    def read(self) -> str:
        """One line from the user (raises ``EOFError`` at the end of input)."""
        with self._lock:
            self._reading = True
        try:
            return input(PROMPT if self.interactive else "")
        finally:
            with self._lock:
                self._reading = False

    def hold(self) -> None:
        """Keep lines back until :meth:`release` (so a greeting follows the banner)."""
        with self._lock:
            self._held = []

    def release(self, *first: str, drop: bool = False) -> None:
        """Print ``first``, then the lines held back (unless ``drop``), and stop holding."""
        with self._lock:
            held, self._held = ([] if drop else self._held) or [], None
            for line in [*first, *held]:
                self.out.write(self._clean(line) + "\n")
            self.out.flush()

    def show(self, line: str) -> None:
        """Print ``line`` above the prompt."""
        line = self._clean(line)
        with self._lock:
            if self._held is not None:
                self._held.append(line)
                return
            if self._reading and self.interactive:
                typed = self._readline.get_line_buffer() if self._readline else ""
                self.out.write(f"\r\x1b[K{line}\n{PROMPT}{typed}")
            else:
                self.out.write(line + "\n")
            self.out.flush()

    def _clean(self, line: str) -> str:
        return redact_text(line, *self._secrets)


class ChatRepl:
    """One chat session on a conversation that is not connected yet. ``secrets``: the
    conversation's credentials, masked in everything printed."""

    def __init__(
        self,
        conversation: Conversation,
        *,
        out: Optional[TextIO] = None,
        interactive: Optional[bool] = None,
        tools: Optional[Dict[str, Callable[..., Any]]] = None,
        ask_timeout: float = 60.0,
        show_partials: bool = False,
        verbose: bool = False,
        talk_first: bool = False,
        secrets: Sequence[str] = (),
    ) -> None:
        self.conversation = conversation
        if interactive is None:
            interactive = sys.stdin.isatty() and sys.stdout.isatty()
        self.console = Console(out or sys.stdout, interactive, secrets)
        self.ask_timeout = ask_timeout
        self.show_partials = show_partials
        self.verbose = verbose
        self.talk_first = talk_first
        self._ended = threading.Event()
        self._leaving = False  # set when the user closes: no "connection closed" notice then
        self._lost = False  # the connection closed before the conversation ended
        self._tools = dict(tools or {})
        for name, function in self._tools.items():
            conversation.tool(name, self._announced(name, function))
        self._listen()

    # --- what arrives (reader and tool threads) ----------------------------------------------

    def _listen(self) -> None:
        conv, show = self.conversation, self.console.show
        rule = conv.turn_rule

        @conv.on(TextMessage)
        def text(message: TextMessage) -> None:
            if not message.from_assistant:
                return  # the service's echo of what the user just typed
            if message.partial:
                if self.show_partials:
                    show(f"agent: ...{message.text}")
            elif rule.is_filler(message.text):
                show(f"agent: ({message.text.strip()})")
            else:
                show(f"agent: {message.text}")

        @conv.on(ToolRequest)
        def tool_request(message: ToolRequest) -> None:
            # Tools of ours announce themselves (the pool may run one before this callback).
            if message.tool_name not in self._tools:
                show(f"  [tool] {message.tool_name} {_short(message.args)}: no such tool here")

        @conv.on(ConversationResult)
        def result(message: ConversationResult) -> None:
            self._ended.set()
            status = message.status or "no status"
            detail = f": {message.error_message}" if message.error_message else ""
            show(f"[conversation ended: {status}{detail}]")

        @conv.on(Event)
        def event(message: Event) -> None:
            if message.name == "closed" and not self._ended.is_set():
                self._ended.set()
                show("[conversation ended]")

        if self.verbose:

            @conv.on("*")
            def every(message: Any) -> None:
                show(f"  <- {_short(message.raw)}")

        @conv.on_error
        def error(exc: BlackBoxError) -> None:
            show(f"  [error] {exc}")

        @conv.on_close
        def closed(code: Optional[int], reason: str) -> None:
            if self._leaving:
                return
            if not self._ended.is_set():
                self._ended.set()
                self._lost = True
                detail = f" (code {code}{', ' + reason if reason else ''})" if code else ""
                show(f"[connection closed{detail}]")
            if self.console.reading:
                show("(the conversation is over: press Enter to leave)")

    def _announced(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        # wraps() keeps the signature visible, so bad arguments are still caught before the call.
        signature = inspect.signature(function)

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            arguments = dict(signature.bind(*args, **kwargs).arguments)
            self.console.show(f"  [tool] {name} {_short(arguments)}")
            value = function(*args, **kwargs)
            self.console.show(f"  [tool] {name} -> {_short(value)}")
            return value

        return run

    # --- the loop (main thread) ------------------------------------------------------------------

    def run(self) -> int:
        """Connect, chat until the user leaves or the conversation ends; the exit status."""
        conv, show = self.conversation, self.console.show
        self.console.hold()
        try:
            conv.connect()
        except BlackBoxError as exc:
            self._leaving = True
            conv.close()
            # What the callbacks said meanwhile (the error frame, the close) is in ``exc``: one
            # line says why, and no "connection closed" for a connection that never opened.
            self.console.release(drop=True)
            show(f"could not start the conversation: {exc}")
            return 1
        banner = [f"Connected to {conv.url} (conversation {conv.record_id or 'without an id'})."]
        if self.console.interactive:
            banner.append("Type a message and press Enter; /help lists the commands.")
        self.console.release(*banner)
        if self.talk_first:
            # The greeting is a turn of its own: wait for it, or the user's first question
            # would take it for its answer.
            try:
                conv.wait_for_reply(timeout=self.ask_timeout)
            except AskTimeout:
                show(f"(no greeting within {self.ask_timeout:g} s)")
            except BlackBoxError as exc:
                show(f"[{exc}]")
        try:
            return self._loop()
        finally:
            self._leaving = True
            conv.close()

    def _loop(self) -> int:
        while not self._over():
            try:
                line = self.console.read()
            except EOFError:
                if self.console.interactive:
                    self.console.show("")
                return self._terminate()
            except KeyboardInterrupt:
                self.console.show("\n(use /quit or Ctrl-D to leave)")
                continue
            line = line.strip()
            if not line:
                continue
            if line.startswith("/") and not line.startswith("//"):
                status = self._command(line)
                if status is not None:
                    return status
                continue
            self._say(line[1:] if line.startswith("//") else line)
        return 1 if self._lost else 0

    def _over(self) -> bool:
        return self._ended.is_set() or self.conversation.phase is Phase.ENDED

    def _say(self, text: str) -> None:
        if not self.console.interactive:
            self.console.show(f"{PROMPT}{text}")
        try:
            self.conversation.ask(text, timeout=self.ask_timeout)
        except AskTimeout:
            self.console.show(f"(no complete reply within {self.ask_timeout:g} s)")
        except ServerError as exc:
            self.console.show(f"[service error: {exc}]")
        except ConnectionClosedError:
            if not self._ended.is_set():
                self._ended.set()
                self._lost = True
                self.console.show("[connection closed]")
        except KeyboardInterrupt:
            self.console.show("\n(stopped waiting; the agent may still be answering)")

    def _command(self, line: str) -> Optional[int]:
        name = line.split()[0].lower()
        if name in ("/quit", "/exit"):
            self._leaving = True
            return 0
        if name == "/terminate":
            return self._terminate()
        if name == "/history":
            for entry in history_lines(self.conversation):
                self.console.show(entry)
            return None
        if name in ("/help", "/?"):
            self.console.show(HELP)
            return None
        self.console.show(f"unknown command {name}; /help lists the commands")
        return None

    def _terminate(self) -> int:
        if self._over():
            return 0
        try:
            result = self.conversation.terminate(timeout=min(self.ask_timeout, 30.0))
        except OperationTimeout as exc:
            self.console.show(f"[{exc}]")
            return 1
        except BlackBoxError as exc:
            self.console.show(f"[could not terminate: {exc}]")
            return 1
        if result is None and not self._ended.is_set():
            self.console.show("[the connection closed without a result]")
        return 0


def history_lines(conversation: Conversation) -> List[str]:
    """The conversation so far as printable lines: texts, tool calls and their answers."""
    history = conversation.history
    answers = {m.id: m.result for m in history if isinstance(m, ToolResponse)}
    echoed = any(isinstance(m, TextMessage) and m.source == "user" for m in history)
    lines: List[str] = []
    rule = conversation.turn_rule
    for message in history:
        if isinstance(message, TextMessage) and not message.partial:
            if not message.from_assistant:
                lines.append(f"you: {message.text}")
            elif rule.is_filler(message.text):
                lines.append(f"agent: ({message.text.strip()})")
            else:
                lines.append(f"agent: {message.text}")
        elif isinstance(message, IncomingChatMessage) and not echoed:
            lines.append(f"you: {message.content}")
        elif isinstance(message, ToolRequest):
            answer = f" -> {_short(answers[message.id])}" if message.id in answers else ""
            lines.append(f"  [tool] {message.tool_name} {_short(message.args)}{answer}")
    return lines or ["(nothing said yet)"]


def parse_data(items: Sequence[str]) -> Dict[str, Any]:
    """``KEY=VALUE`` pairs for ``additionalData``; a VALUE that is JSON is read as JSON."""
    data: Dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--data expects KEY=VALUE, got {item!r}")
        try:
            data[key] = json.loads(value)
        except ValueError:
            data[key] = value
    return data


# --- the command ----------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
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
                return need_emulator_extra(exc)
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
            credentials = _credentials(args)
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


def _credentials(args: argparse.Namespace) -> "Dict[str, Any] | int":
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


def add_command(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
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
    chat.set_defaults(run=_run)
