"""What a suite asks for: conversations, their steps, checks, scripted tools and settings.

The loader builds these from case files; they can also be built in code. A :class:`Case` is
complete on its own (suite-level ``vars``, ``tools``, ``additional_data`` and ``defaults`` are
already merged into it), so a case can be shipped to an executor worker by itself. Every class
pickles, for executors that run in other processes.
"""

from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import attrs

from blackbox_sync.protocol.state import TurnRule
from blackbox_sync.settings import DEFAULT_FILLERS

STEP_KINDS = ("user", "user_audio", "expect_agent", "wait", "terminate")
CALL_TYPES = ("chat", "webCall")


@attrs.define
class TurnEndSpec:
    """The end-of-turn rule every turn of a case uses; printed into every result."""

    quiet_ms: float = 1500.0
    """Milliseconds of quiet after the agent's last activity before its turn counts as over."""
    fillers: Tuple[str, ...] = DEFAULT_FILLERS
    """Assistant texts that are fillers: kept in the transcript, never reply text."""
    voice: bool = False
    """A ``webCall`` case: the quiet is measured on the agent's audio as well as its texts and
    tool activity (printed as the rule ``audio_quiet``)."""

    def rule(self) -> TurnRule:
        """The client's :class:`~blackbox_sync.TurnRule` for this spec."""
        return TurnRule(quiet_period=self.quiet_ms / 1000.0, fillers=self.fillers)

    def describe(self, quiet_ms: Optional[float] = None) -> Dict[str, Any]:
        """The rule as results print it; ``quiet_ms`` is a step's own quiet period, if any."""
        return {
            "rule": "audio_quiet" if self.voice else "quiet",
            "quiet_ms": self.quiet_ms if quiet_ms is None else float(quiet_ms),
            "fillers": list(self.fillers),
        }


@attrs.define
class Timeouts:
    """Seconds each phase of a conversation may take."""

    connect_s: float = 15.0
    turn_s: float = 30.0
    terminate_s: float = 10.0
    conversation_s: float = 300.0


@attrs.define
class PassIf:
    """When a case passes: the share of passing repeats, and optionally a weighted score."""

    min_pass_rate: float = 1.0
    min_score: Optional[float] = None
    """``None``: every weighted check must pass; a number: the weighted score must reach it."""


@attrs.define
class Settings:
    """Suite ``defaults``, overridable per case."""

    timeouts: Timeouts = attrs.field(factory=Timeouts)
    turn_end: TurnEndSpec = attrs.field(factory=TurnEndSpec)
    retries: int = 1
    """Extra attempts after an infrastructure error (never after a failed check)."""
    retry_backoff_s: float = 1.0
    """Wait before the first retry; doubles for each further one."""
    repeat: int = 1
    pass_if: PassIf = attrs.field(factory=PassIf)
    talk_first: bool = False
    """The agent speaks first: before a first ``user`` step, wait for its greeting (unchecked),
    so the greeting never spills into the first reply."""
    call_type: str = "chat"
    """``chat`` or ``webCall`` (a WebRTC voice call; needs the ``voice`` extra)."""


@attrs.define
class Check:
    """One assertion: ``kind`` (``contains``, ``tool_called``, ...) with its ``value``."""

    kind: str
    value: Any
    negate: bool = False
    """``not: true`` in a file: the check passes when the assertion does not hold."""
    weight: float = 1.0
    """Share in the weighted score; 0 makes the check informational."""
    name: Optional[str] = None
    where: str = ""
    """``file:line`` of the check, for messages."""

    def label(self) -> str:
        """A short description for reports."""
        if self.name:
            return self.name
        value = self.value if isinstance(self.value, str) else _short(self.value)
        return f"{'not ' if self.negate else ''}{self.kind}: {value}"


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value) if not isinstance(value, (dict, list)) else _json(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, default=str)


ToolHandler = Union[str, Callable[..., Any]]


@attrs.define
class ToolScript:
    """How the runner answers a client-side tool request.

    Exactly one of: ``result`` (a canned result; ``{{args.x}}`` and ``{{var}}`` templates are
    filled), ``results`` (one per call, in order; the last repeats), ``handler`` (a callable or a
    ``module:function`` reference, called with the request's arguments as keywords), ``error``
    (answered as ``{"error": "..."}``).
    """

    result: Any = None
    results: Optional[List[Any]] = None
    handler: Optional[ToolHandler] = None
    error: Optional[str] = None


@attrs.define
class Step:
    """One step of a conversation. ``kind`` is ``user``, ``user_audio``, ``expect_agent``,
    ``wait`` or ``terminate``."""

    kind: str
    text: Optional[str] = None
    """``user``: the message (a template)."""
    audio: Optional[str] = None
    """``user_audio``: the WAV file the user says (a ``webCall`` case), as an absolute path."""
    seconds: float = 0.0
    """``wait``: how long the simulated user pauses."""
    expect: List[Check] = attrs.field(factory=list)
    capture: Dict[str, str] = attrs.field(factory=dict)
    """Variable name → regular expression searched in the agent's reply (group 1 if it has
    groups, else the whole match)."""
    timeout_s: Optional[float] = None
    quiet_ms: Optional[float] = None
    where: str = ""


@attrs.define
class Case:
    """One scripted conversation."""

    id: str
    steps: List[Step]
    expect_conversation: List[Check] = attrs.field(factory=list)
    description: str = ""
    tags: Tuple[str, ...] = ()
    vars: Dict[str, Any] = attrs.field(factory=dict)
    additional_data: Dict[str, Any] = attrs.field(factory=dict)
    tools: Dict[str, ToolScript] = attrs.field(factory=dict)
    settings: Settings = attrs.field(factory=Settings)
    where: str = ""


@attrs.define
class Suite:
    """A file's worth of cases and where they came from."""

    name: str
    cases: List[Case]
    path: Optional[str] = None
    base_dir: Optional[str] = None
    """Folder that ``module:function`` references and relative paths are resolved from."""
    description: str = ""
    judge: Optional[Union[str, Callable[..., Any]]] = None
    """The default judge for ``judge`` checks (a callable or ``module:function``)."""
    emulator_agent: Optional[str] = None
    """Agent file for ``--target emulator`` (absolute, or relative to ``base_dir``)."""
    live: Dict[str, str] = attrs.field(factory=dict)
    """Non-secret live settings: ``base_url``, ``integration_id``, ``agent_id``, ``origin``."""
