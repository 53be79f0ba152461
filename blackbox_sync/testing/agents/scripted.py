r"""Scripted agents: what the emulated BlackBox agent says and does in each turn.

An agent answers each user message (and, when it talks first, the start of the conversation)
with a *turn*: a generator of steps that the WebSocket session executes in order —
:class:`Say` (a ``text`` frame), :class:`Pause`, :class:`CallTool` (a ``websocketToolRequest``;
the session sends the client's result back into the generator), :class:`SendRaw` (any frame, even
malformed, for robustness tests) and :class:`End` (the agent ends the conversation).

:class:`ScriptedAgent` builds turns from ordered :class:`Rule`\ s, and from a Python callback
for the messages no rule matches. Texts and string tool arguments are ``str.format`` templates
over the turn's context: ``{user}``, ``{match[0]}``/``{match[1]}``/``{match[name]}`` (the
pattern's match and groups), ``{result[status]}`` (the last tool result), ``{results[toolName]}``,
``{data[key]}`` (the conversation's ``additionalData``), ``{turn}``, ``{record_id}`` and
``{state[key]}``. A template that does not render is sent as written and logged, so literal
braces are harmless.

Pure: no I/O and no asyncio. Turns run on the emulator's loop thread, so a callback must not
block for long.
"""

import logging
import re
from os import PathLike
from typing import (
    Any,
    Callable,
    Dict,
    Generator,
    Iterable,
    Iterator,
    List,
    Optional,
    Pattern,
    Protocol,
    Sequence,
    Tuple,
    Union,
)

import attrs

log = logging.getLogger("blackbox_sync.testing")

RawFrame = Union[str, bytes, Dict[str, Any]]
"""A frame sent verbatim: text (even invalid JSON), a binary payload, or a dict dumped as JSON."""

DEFAULT_REPLY = "You said: {user}"


@attrs.frozen
class Say:
    """Send an assistant ``text`` frame; ``partial`` marks it ``content.type: "potential"``."""

    text: str
    partial: bool = False


@attrs.frozen
class Pause:
    """Wait before the next step (the agent "thinking" or typing)."""

    seconds: float


@attrs.frozen
class CallTool:
    """Ask the client to run a tool and wait for its ``websocketToolResponse``.

    ``id`` defaults to ``tool-<n>``; ``timeout`` to the agent's ``tool_timeout``. Without an answer
    in time the agent goes on with ``{"error": "Tool response timed out"}`` as the result.
    """

    name: str
    args: Any = attrs.field(factory=dict)
    id: Optional[str] = None
    timeout: Optional[float] = None


def _tools(value: Iterable[CallTool]) -> Tuple[CallTool, ...]:
    return tuple(value)


@attrs.frozen
class CallTools:
    """Ask for several tools at once: every request goes out before any answer is awaited, as
    an agent that calls tools in parallel does. The turn receives the results as a list, in the
    order of ``calls``."""

    calls: Tuple[CallTool, ...] = attrs.field(converter=_tools)


@attrs.frozen
class SendRaw:
    """Send ``frame`` exactly as given: unknown types, malformed JSON, binary data."""

    frame: RawFrame


@attrs.frozen
class End:
    """The agent ends the conversation: ``conversationResult``, ``event closed``, close."""

    status: str = "Completed"
    error_message: Optional[str] = None


Step = Union[Say, Pause, CallTool, CallTools, SendRaw, End]
STEP_TYPES = (Say, Pause, CallTool, CallTools, SendRaw, End)
Turn = Generator[Step, Any, None]
"""What an agent returns for a turn; a :class:`CallTool` step is answered through ``send()``."""


@attrs.define
class AgentContext:
    """One conversation as the agent sees it; ``state`` is free space for callback agents."""

    record_id: str
    agent_id: Optional[str] = None
    call_type: str = "chat"
    additional_data: Dict[str, Any] = attrs.field(factory=dict)
    turn: int = 0
    """0 for the greeting, then 1, 2, ... for each user message."""
    user_text: str = ""
    match: Dict[Union[int, str], Optional[str]] = attrs.field(factory=dict)
    result: Any = None
    """The last tool result of the conversation."""
    results: Dict[str, Any] = attrs.field(factory=dict)
    """The last result of each tool, by tool name."""
    transcript: List[Tuple[str, str]] = attrs.field(factory=list)
    state: Dict[str, Any] = attrs.field(factory=dict)
    rule_uses: Dict[int, int] = attrs.field(factory=dict, repr=False)
    tool_count: int = attrs.field(default=0, repr=False)

    def template_values(self) -> Dict[str, Any]:
        """The names a text template can use."""
        return {
            "user": self.user_text,
            "match": self.match,
            "result": self.result,
            "results": self.results,
            "data": self.additional_data,
            "turn": self.turn,
            "record_id": self.record_id,
            "state": self.state,
        }

    def render(self, text: str) -> str:
        """Fill ``text``'s template; on any error send it as written (and log why)."""
        if "{" not in text and "}" not in text:
            return text
        try:
            return text.format_map(self.template_values())
        except (KeyError, IndexError, AttributeError, ValueError, TypeError) as exc:
            log.warning("agent template %r sent as written: %s: %s", text, type(exc).__name__, exc)
            return text

    def render_args(self, value: Any) -> Any:
        """Fill the templates in every string of a tool's arguments."""
        if isinstance(value, str):
            return self.render(value)
        if isinstance(value, dict):
            return {k: self.render_args(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render_args(v) for v in value]
        return value

    def next_tool_id(self) -> str:
        """A fresh tool-call id, unique within the conversation."""
        self.tool_count += 1
        return f"tool-{self.tool_count}"


def _texts(value: Union[str, Iterable[str], None]) -> Tuple[str, ...]:
    if value is None:
        return ()
    items = (value,) if isinstance(value, str) else tuple(value)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"expected text, got {type(item).__name__}: {item!r}")
    return items


def _steps(value: Iterable[Step]) -> Tuple[Step, ...]:
    return tuple(value)


def _raw_frames(value: Iterable[RawFrame]) -> Tuple[RawFrame, ...]:
    return tuple(value)


def _non_negative(_: Any, attribute: "attrs.Attribute[float]", value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value}")


@attrs.frozen
class Rule:
    """When the user's message matches ``pattern`` (case-insensitive), answer like this.

    ``pattern`` is a substring, or a regular expression with ``regex=True`` (searched, not
    anchored; an empty pattern matches everything). The turn it produces is, in order:
    ``raw_frames``, ``fillers``, ``partials`` (``potential`` texts), ``tools`` (each waits for the
    client's answer; with ``parallel_tools`` all are requested at once and answered in any
    order), ``reply`` (several texts = a split reply, one frame each), then the end of
    the conversation if ``end_conversation``. ``delay`` comes before the first frame and
    ``chunk_delay`` between consecutive frames. ``steps`` replaces all of that with an explicit
    list. ``times`` limits how often the rule fires per conversation.
    """

    pattern: str
    reply: Tuple[str, ...] = attrs.field(default=(), converter=_texts)
    regex: bool = attrs.field(default=False, kw_only=True)
    fillers: Tuple[str, ...] = attrs.field(default=(), converter=_texts, kw_only=True)
    partials: Tuple[str, ...] = attrs.field(default=(), converter=_texts, kw_only=True)
    tools: Tuple[CallTool, ...] = attrs.field(default=(), converter=_tools, kw_only=True)
    parallel_tools: bool = attrs.field(default=False, kw_only=True)
    raw_frames: Tuple[RawFrame, ...] = attrs.field(default=(), converter=_raw_frames, kw_only=True)
    delay: float = attrs.field(default=0.0, validator=_non_negative, kw_only=True)
    chunk_delay: float = attrs.field(default=0.0, validator=_non_negative, kw_only=True)
    end_conversation: bool = attrs.field(default=False, kw_only=True)
    times: Optional[int] = attrs.field(default=None, kw_only=True)
    steps: Tuple[Step, ...] = attrs.field(default=(), converter=_steps, kw_only=True)
    _matcher: "Pattern[str]" = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        source = self.pattern if self.regex else re.escape(self.pattern)
        object.__setattr__(self, "_matcher", re.compile(source, re.IGNORECASE))
        if self.steps and (
            self.reply or self.fillers or self.partials or self.tools or self.raw_frames
        ):
            raise ValueError("Rule: give either steps or reply/fillers/partials/tools/raw_frames")
        if self.times is not None and self.times < 1:
            raise ValueError(f"Rule.times must be >= 1, got {self.times}")
        for step in self.steps:
            if not isinstance(step, STEP_TYPES):
                raise TypeError(f"Rule.steps: {step!r} is not a step")
        for tool in self.tools:
            if not isinstance(tool, CallTool):
                raise TypeError(f"Rule.tools: {tool!r} is not a CallTool")

    def match(self, text: str) -> Optional[Dict[Union[int, str], Optional[str]]]:
        """The match and its groups (by number and by name), or ``None`` when it does not match."""
        found = self._matcher.search(text)
        if found is None:
            return None
        groups: Dict[Union[int, str], Optional[str]] = {0: found.group(0)}
        groups.update(dict(enumerate(found.groups(), start=1)))
        groups.update(found.groupdict())
        return groups

    def script(self) -> List[Step]:
        """The rule's turn as a flat list of steps (templates not yet filled)."""
        body: List[Step] = list(self.steps) or [
            *(SendRaw(f) for f in self.raw_frames),
            *(Say(t) for t in self.fillers),
            *(Say(t, partial=True) for t in self.partials),
            *((CallTools(self.tools),) if self.parallel_tools and self.tools else self.tools),
            *(Say(t) for t in self.reply),
        ]
        out: List[Step] = [Pause(self.delay)] if self.delay else []
        for step in body:
            if self.chunk_delay and isinstance(step, (Say, SendRaw)) and _sent_frame(out):
                out.append(Pause(self.chunk_delay))
            out.append(step)
        if self.end_conversation:
            out.append(End())
        return out


def _sent_frame(steps: Sequence[Step]) -> bool:
    return any(isinstance(s, (Say, SendRaw, CallTool, CallTools)) for s in steps)


HandlerResult = Union[None, str, Rule, Iterable[Union[str, Step]]]
"""What a callback returns: nothing, one text, a :class:`Rule` (its pattern is ignored), texts
and steps, or a generator of them that receives each :class:`CallTool`'s result from ``yield``."""
Handler = Callable[[str, AgentContext], HandlerResult]
ReplySpec = Union[None, str, Sequence[str], Rule]


class Agent(Protocol):
    """What the WebSocket session needs from an agent; :class:`ScriptedAgent` is one."""

    echo: bool
    tool_timeout: float
    announce_tool_calls: bool

    def greet(self, context: AgentContext) -> Turn:
        """The turn played right after the ``connection`` event (may be empty)."""

    def respond(self, text: str, context: AgentContext) -> Turn:
        """The turn that answers the user's ``text``."""


def _as_rule(spec: ReplySpec) -> Optional[Rule]:
    if spec is None or isinstance(spec, Rule):
        return spec
    return Rule("", spec)


class ScriptedAgent:
    """An agent driven by ordered rules, a callback, and a default reply.

    For each user message the first rule that matches (and has uses left) answers; if none does,
    ``handler(text, context)`` answers when given, else ``default`` (``None`` = say nothing).
    ``greeting`` is said right after the ``connection`` event (talk-first). ``echo`` sends the
    user's message back as a ``text`` frame with ``source: "user"``, as the live service does.
    ``announce_tool_calls`` precedes each tool request with an informational ``toolCall`` frame.
    """

    def __init__(
        self,
        rules: Iterable[Rule] = (),
        *,
        default: ReplySpec = DEFAULT_REPLY,
        greeting: ReplySpec = None,
        handler: Optional[Handler] = None,
        echo: bool = True,
        tool_timeout: float = 10.0,
        announce_tool_calls: bool = False,
        name: Optional[str] = None,
    ) -> None:
        self.rules: List[Rule] = list(rules)
        self.default = _as_rule(default)
        self.greeting = _as_rule(greeting)
        self.handler = handler
        self.echo = echo
        self.tool_timeout = tool_timeout
        self.announce_tool_calls = announce_tool_calls
        self.name = name

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return f"<ScriptedAgent{label} rules={len(self.rules)} handler={self.handler is not None}>"

    def greet(self, context: AgentContext) -> Turn:
        """The talk-first turn (empty without a greeting)."""
        return perform(self.greeting, context)

    def respond(self, text: str, context: AgentContext) -> Turn:
        """The turn that answers the user's ``text``."""
        context.user_text = text
        for index, rule in enumerate(self.rules):
            if rule.times is not None and context.rule_uses.get(index, 0) >= rule.times:
                continue
            groups = rule.match(text)
            if groups is not None:
                context.rule_uses[index] = context.rule_uses.get(index, 0) + 1
                context.match = groups
                return perform(rule, context)
        context.match = {}
        if self.handler is not None:
            return perform(self.handler(text, context), context)
        return perform(self.default, context)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "ScriptedAgent":
        """Build an agent from the agent-file format (see :mod:`.file`)."""
        return _agent_format().from_dict(data)

    @classmethod
    def from_file(cls, path: "Union[str, PathLike[str]]") -> "ScriptedAgent":
        """Load an agent from a ``.json``, ``.yaml`` or ``.yml`` file (YAML needs PyYAML)."""
        return _agent_format().from_file(path)


@attrs.frozen
class AgentFormat:
    """How agent files are read: :mod:`.file` builds agents from this module's classes, so it
    registers its readers here (:func:`register_agent_format`) instead of being imported."""

    from_dict: Callable[[Any], ScriptedAgent]
    from_file: Callable[["Union[str, PathLike[str]]"], ScriptedAgent]


_formats: List[AgentFormat] = []


def register_agent_format(agent_format: AgentFormat) -> None:
    """Make ``agent_format`` the reader of :meth:`ScriptedAgent.from_dict` and ``from_file``."""
    _formats[:] = [agent_format]


def _agent_format() -> AgentFormat:
    if not _formats:  # the package's __init__ imports .file, so only a broken install gets here
        raise RuntimeError("no agent-file reader is registered (blackbox_sync.testing.agents.file)")
    return _formats[0]


def perform(source: HandlerResult, context: AgentContext) -> Turn:
    """Run ``source`` as a turn: fill templates just in time and feed tool results back."""
    if source is None:
        return
    generator: Optional[Generator[Any, Any, Any]] = None
    items: Iterator[Any] = iter(())
    if isinstance(source, str):
        items = iter((source,))
    elif isinstance(source, Rule):
        items = iter(source.script())
    elif isinstance(source, Generator):
        generator = source
    else:
        items = iter(source)
    answer: Any = None
    while True:
        try:
            item = generator.send(answer) if generator is not None else next(items)
        except StopIteration:
            return
        answer = None
        step = _as_step(item)
        if isinstance(step, CallTool):
            step = _filled(step, context)
            answer = yield step
            context.result = answer
            context.results[step.name] = answer
        elif isinstance(step, CallTools):
            step = CallTools(tuple(_filled(call, context) for call in step.calls))
            answer = yield step
            for call, result in zip(step.calls, answer):
                context.result = result
                context.results[call.name] = result
        elif isinstance(step, Say):
            yield attrs.evolve(step, text=context.render(step.text))
        else:
            yield step


def _filled(step: CallTool, context: AgentContext) -> CallTool:
    """The request as sent: its id assigned and its argument templates filled."""
    return attrs.evolve(
        step, id=step.id or context.next_tool_id(), args=context.render_args(step.args)
    )


def _as_step(item: Any) -> Step:
    if isinstance(item, str):
        return Say(item)
    if isinstance(item, STEP_TYPES):
        return item
    raise TypeError(f"an agent produced {item!r}, which is neither text nor a step")
