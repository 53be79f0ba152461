"""One attempt of one case: connect, play the steps in order, check, end, record.

:func:`run_attempt` is what executors run. It never raises: whatever happens becomes an
:class:`~.results.Attempt` whose status is ``passed``, ``failed`` (a check did not hold) or
``error`` (infrastructure, see :func:`classify`). Timings are taken on this client with a
monotonic clock as frames are decoded, so latency is measured on the wire, not in the agent.
"""

import os
import re
import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import attrs

from blackbox_sync.conversation.facade import Conversation
from blackbox_sync.errors import (
    ApiError,
    AuthenticationError,
    BlackBoxError,
    ConnectionClosedError,
    HandshakeRefused,
    OperationTimeout,
    ServerError,
)
from blackbox_sync.protocol.messages import (
    ConversationResult,
    ErrorMessage,
    Event,
    Message,
    TextMessage,
    ToolCallResult,
    ToolRequest,
    UnknownMessage,
)
from blackbox_sync.protocol.reply import AskTimeout, Reply
from blackbox_sync.protocol.state import Phase, TurnRule
from blackbox_sync.qa import refs, templates
from blackbox_sync.qa.assertions import (
    CheckEnv,
    InfraError,
    Observed,
    ToolSeen,
    evaluate,
    weighted_score,
)
from blackbox_sync.qa.results import (
    Attempt,
    CheckResult,
    Entry,
    ErrorInfo,
    Status,
    TurnRecord,
    redact_attempt,
)
from blackbox_sync.qa.spec import Case, Check, Step, ToolScript
from blackbox_sync.qa.targets import known_secrets
from blackbox_sync.qa.voicecall import Heard, VoiceUnavailable, exchange, open_call
from blackbox_sync.voice import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    AudioSource,
    Silence,
    VoiceError,
    VoiceTimeout,
    WavSource,
)


@attrs.define
class AttemptJob:
    """Everything an executor worker needs for one attempt (it pickles)."""

    suite: str
    case: Case
    target: Any
    repeat: int = 1
    attempt: int = 1
    judge: Optional[Union[str, Callable[..., Any]]] = None
    judge_cache: Optional[str] = None
    base_dir: Optional[str] = None
    nonce: str = attrs.field(factory=lambda: uuid.uuid4().hex)
    """Makes every job distinct, so an executor that caches by arguments (dask) never reuses
    another attempt's result."""


def run_attempt(job: AttemptJob) -> Attempt:
    """Run one attempt; never raises. Its result holds no credential (see
    :func:`~.results.redact_attempt`), whatever the server echoed."""
    run = _AttemptRun(job)
    try:
        run.run()
    except Exception as exc:  # a runner bug must still come back as a result, never hang a run
        run.error = ErrorInfo("internal", f"{type(exc).__name__}: {exc}", retryable=False)
    # After the run: a token minted for this attempt is among the target's secrets by now.
    return redact_attempt(run.finish(), known_secrets(job.target))


RETRYABLE_4XX = (408, 429)
"""Client-error statuses that are hiccups (a timeout, a rate limit): any other 4xx answer is
permanent, and asking again only repeats it."""


def classify(exc: BaseException, phase: str, step: Optional[int] = None) -> ErrorInfo:
    """The infrastructure error an exception stands for."""
    message = str(exc) or type(exc).__name__
    status = http_status(exc)
    if isinstance(exc, AuthenticationError) or status in (401, 403):
        return ErrorInfo("auth", message, step, retryable=False)
    if status is not None and 400 <= status < 500 and status not in RETRYABLE_4XX:
        return ErrorInfo("connect", message, step, retryable=False)
    if isinstance(exc, ServerError):
        return ErrorInfo("server_error", message, step)
    if isinstance(exc, OperationTimeout):
        kind = {"connect": "connect", "terminate": "terminate"}.get(phase, "timeout")
        return ErrorInfo(kind, message, step)
    if isinstance(exc, (ConnectionClosedError, OSError)) and phase != "connect":
        return ErrorInfo("closed", message, step)
    if isinstance(exc, (BlackBoxError, OSError)):
        return ErrorInfo("connect", message, step)
    return ErrorInfo("internal", f"{type(exc).__name__}: {message}", step, retryable=False)


def http_status(exc: BaseException) -> Optional[int]:
    """The HTTP status behind ``exc``: a REST answer's, or a refused WebSocket handshake's."""
    if isinstance(exc, (ApiError, HandshakeRefused)):
        return exc.status
    return None


@attrs.define
class _Answer:
    """What turn checks read from one agent turn."""

    text: str
    texts: List[str]
    tools: List[ToolSeen]

    @classmethod
    def of(cls, reply: Reply) -> "_Answer":
        tools = [ToolSeen(r.tool_name, r.args) for r in reply.tool_requests]
        return cls(reply.text, list(reply.texts), tools)


def now_iso() -> str:
    """The UTC time now, ISO 8601 with milliseconds and ``Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _AttemptRun:
    """The state of one attempt while it runs."""

    def __init__(self, job: AttemptJob) -> None:
        self.job = job
        self.case = job.case
        self.settings = job.case.settings
        self.rule: TurnRule = self.settings.turn_end.rule()
        self.t0 = time.monotonic()
        self.started_at = now_iso()
        self.deadline = self.t0 + self.settings.timeouts.conversation_s
        self.lock = threading.Lock()
        self.frames: List[Tuple[float, Message]] = []
        self.entries: List[Entry] = []
        self.turns: List[TurnRecord] = []
        self.checks: List[CheckResult] = []
        self.vars: Dict[str, Any] = {**job.case.vars, "case_id": job.case.id, "repeat": job.repeat}
        self.error: Optional[ErrorInfo] = None
        self.ended_by: Optional[str] = None
        self.result: Optional[Dict[str, Any]] = None
        self.record_id: Optional[str] = None
        self.close_code: Optional[int] = None
        self.mark: Optional[float] = None
        self.step: Optional[int] = None
        self.tool_uses: Dict[str, int] = {}
        # A tool handler can start before this client's frame callback sees its request (the
        # pool is fed first), so whichever comes first logs the request, the other skips it.
        self.requests_logged_by: Dict[Tuple[str, str], int] = {}
        self.env = CheckEnv(judge=job.judge, judge_cache=job.judge_cache, base_dir=job.base_dir)
        self.target_kind = str(getattr(job.target, "kind", ""))
        self.new_frame = threading.Condition(self.lock)
        """Notified on every frame: a voice turn waits on it for the quiet to hold."""
        self.call: Any = None
        """The :class:`~blackbox_sync.voice.VoiceCall` of a ``webCall`` case."""
        self.clips = 0
        self.recordings: List[Tuple[TurnRecord, int]] = []
        self.closed = threading.Event()
        """Set when the socket closes: a ``wait`` step ends early, so an interrupt is prompt."""

    # --- recording -------------------------------------------------------------------------------

    def ms(self, t: float) -> float:
        return round((t - self.t0) * 1000.0, 1)

    def add_entry(self, t: float, role: str, text: str = "", data: Any = None, *flags: str) -> None:
        with self.lock:
            self.entries.append(Entry(self.ms(t), role, text, data, tuple(flags), self.step))

    def on_frame(self, message: Message) -> None:
        t = time.monotonic()
        with self.lock:
            self.frames.append((t, message))
            self.new_frame.notify_all()
        if isinstance(message, TextMessage):
            if message.from_assistant:
                flags = ["partial"] if message.partial else []
                if not message.partial and self.rule.is_filler(message.text):
                    flags.append("filler")
                self.add_entry(t, "assistant", message.text, None, *flags)
            elif self.call is not None and not message.partial:
                self.add_entry(t, "user", message.text)  # what the service heard of the clip
        elif isinstance(message, ToolRequest):
            self.log_request(t, message.tool_name, message.args, by="frame")
        elif isinstance(message, ToolCallResult):
            self.add_entry(t, "tool_result", str(message.tool_name or ""), message.result)
        elif isinstance(message, Event):
            self.add_entry(t, "event", str(message.name))
        elif isinstance(message, ErrorMessage):
            self.add_entry(t, "error", str(message.message))
        elif isinstance(message, ConversationResult):
            self.add_entry(t, "result", str(message.status or ""), message.error_message)
        elif isinstance(message, UnknownMessage):
            self.add_entry(t, "event", f"unknown frame type {message.type!r}")

    def log_request(self, t: float, name: str, args: Any, by: str) -> None:
        other = "handler" if by == "frame" else "frame"
        with self.lock:
            if self.requests_logged_by.get((other, name), 0) > 0:
                self.requests_logged_by[(other, name)] -= 1
                return
            key = (by, name)
            self.requests_logged_by[key] = self.requests_logged_by.get(key, 0) + 1
        self.add_entry(t, "tool_request", name, args)

    def frames_between(self, start: float, end: float) -> List[Tuple[float, Message]]:
        with self.lock:
            return [(t, m) for t, m in self.frames if start <= t <= end]

    def last_activity(self, since: float) -> Optional[float]:
        """The latest agent text or tool frame since ``since`` (voice turns' quiet rule)."""
        with self.lock:
            times = [t for t, m in self.frames if t >= since and _is_activity(m, self.rule)]
        return max(times, default=None)

    def wait_for_frame(self, seconds: float) -> None:
        with self.new_frame:
            self.new_frame.wait(seconds)

    # --- tools -----------------------------------------------------------------------------------

    def tool_handler(self, name: str, script: ToolScript) -> Callable[..., Any]:
        def handler(**args: Any) -> Any:
            self.log_request(time.monotonic(), name, args, by="handler")
            with self.lock:
                self.tool_uses[name] = self.tool_uses.get(name, 0) + 1
                use = self.tool_uses[name]
            try:
                answer = self.answer(script, args, use)
            except Exception as exc:
                self.add_entry(time.monotonic(), "tool_response", name, {"error": str(exc)})
                raise
            self.add_entry(time.monotonic(), "tool_response", name, answer)
            return answer

        return handler

    def answer(self, script: ToolScript, args: Dict[str, Any], use: int) -> Any:
        if script.handler is not None:
            return refs.as_callable(script.handler, self.job.base_dir)(**args)
        if script.error is not None:
            return {"error": script.error}
        if script.results is not None:
            canned = script.results[min(use, len(script.results)) - 1]
        else:
            canned = script.result
        return templates.render(canned, {**self.vars, "args": args})

    # --- the conversation ------------------------------------------------------------------------

    def run(self) -> None:
        try:
            additional = templates.render(self.case.additional_data, self.vars)
        except templates.TemplateError as exc:
            self.runner_check("runner", "additional_data", False, str(exc))
            return
        settings = self.settings
        options: Dict[str, Any] = {}
        if settings.call_type == "webCall":
            try:
                self.call = self.open_voice()
            except VoiceUnavailable as exc:
                self.error = ErrorInfo("voice", str(exc), retryable=False)
                return
            options = {"call_type": "webCall", "voice": self.call}
        try:
            with self.job.target.conversation(
                self.job.suite,
                additional_data=additional,
                quiet_period=self.rule.quiet_period,
                fillers=self.rule.fillers,
                connect_timeout=settings.timeouts.connect_s,
                **options,
            ) as conv:
                self.converse(conv)
        except Exception as exc:  # token minting or building the conversation failed
            if self.error is None:
                self.error = classify(exc, "connect")
        finally:
            self.close_voice()

    def open_voice(self) -> Any:
        timeouts = self.settings.timeouts
        return open_call(
            quiet_s=self.rule.quiet_period,
            turn_s=timeouts.turn_s,
            connect_s=timeouts.connect_s,
            record_turns=self.recording_pattern(),
        )

    def recording_pattern(self) -> Optional[str]:
        """Where the agent's audio goes, one WAV per turn, when the target has a record_dir."""
        root = getattr(self.job.target, "record_dir", None)
        if not root:
            return None
        folder = os.path.join(
            os.fspath(root),
            _safe(self.job.suite),
            _safe(self.case.id),
            f"repeat-{self.job.repeat}-attempt-{self.job.attempt}",
        )
        os.makedirs(folder, exist_ok=True)
        return os.path.join(folder, "agent-turn-{turn}.wav")

    def close_voice(self) -> None:
        """Join the voice thread (the conversation's close starts it), then name the files."""
        if self.call is None:
            return
        self.call.close()
        pattern = self.call.record_turns
        for turn, index in self.recordings:
            path = pattern.format(turn=index) if pattern else None
            if path and os.path.exists(path):
                turn.audio = path

    def converse(self, conv: Conversation) -> None:
        for name, script in self.case.tools.items():
            conv.tool(name, self.tool_handler(name, script))
        conv.on("*", self.on_frame)
        conv.on_close(lambda code, reason: self.closed.set())
        if self.case.steps and self.case.steps[0].kind == "expect_agent":
            self.step = 1  # a greeting can arrive before connect() returns: it is step 1's
        elif self.settings.talk_first:
            self.step = 0
        try:
            try:
                conv.connect(timeout=min(self.settings.timeouts.connect_s, self.remaining()))
            except Exception as exc:
                self.error = classify(exc, "connect")
                return
            self.record_id = conv.record_id
            if self.call is not None and not self.voice_connected():
                return
            self.play(conv)
            with self.lock:
                self.step = None
            if self.error is None and self.ended_by is None:
                self.terminate(conv, None)
        finally:
            conv.close()
            self.close_code = conv.close_code
            if conv.result is not None:
                self.result = _result_dict(conv.result)
        if self.error is None:
            self.check_conversation()

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def voice_connected(self) -> bool:
        try:
            self.call.wait_connected(min(self.settings.timeouts.connect_s, self.remaining()))
        except VoiceError as exc:
            self.error = ErrorInfo("voice", f"the voice call did not connect: {exc}")
            return False
        return True

    def quiet_ms(self, step: Step) -> float:
        """The quiet period this step's turn uses: its own, else the case's."""
        return self.settings.turn_end.quiet_ms if step.quiet_ms is None else step.quiet_ms

    def play(self, conv: Conversation) -> None:
        steps = self.case.steps
        if self.settings.talk_first and steps and steps[0].kind != "expect_agent":
            with self.lock:
                self.step = 0
            if not self.turn(conv, 0, Step(kind="expect_agent")):  # the greeting, unchecked
                return
        for number, step in enumerate(steps, start=1):
            if self.error is not None:
                return
            with self.lock:
                self.step = number
            if step.kind == "wait":
                self.closed.wait(min(step.seconds, self.remaining()))  # the user pauses
                continue
            if step.kind == "terminate":
                self.terminate(conv, number)
                continue
            if conv.phase is Phase.ENDED or conv.closed:
                self.runner_check(
                    f"step {number}",
                    "conversation_open",
                    False,
                    f"the conversation had already ended ({self.ended_by or 'closed'})",
                )
                return
            if not self.turn(conv, number, step):
                return

    def turn(self, conv: Conversation, number: int, step: Step) -> bool:
        """Play one ``user`` or ``expect_agent`` step; False stops the conversation."""
        remaining = self.remaining()
        if remaining <= 0:
            self.runner_check(
                f"step {number}", "conversation_s", False, "conversation time limit reached"
            )
            return False
        timeout = min(step.timeout_s or self.settings.timeouts.turn_s, remaining)
        if self.call is not None:
            return self.voice_turn(conv, number, step, timeout)
        quiet = None if step.quiet_ms is None else step.quiet_ms / 1000.0
        text: Optional[str] = None
        if step.kind == "user":
            try:
                text = str(templates.render(step.text or "", self.vars))
            except templates.TemplateError as exc:
                self.runner_check(f"step {number}", "template", False, str(exc))
                return False
            start = time.monotonic()
            self.add_entry(start, "user", text)
        else:
            start = self.mark if self.mark is not None else self.ready_time()
        try:
            reply = (
                conv.ask(text, timeout=timeout, quiet_period=quiet)
                if text is not None
                else conv.wait_for_reply(timeout=timeout, quiet_period=quiet)
            )
        except AskTimeout as exc:
            partial = exc.reply
            if partial is None or not partial.texts:
                self.error = classify(exc, "turn", number)
                self.error.message = f"no reply within {timeout:g} s"
                self.ended_by = "timeout"
                return False
            self.record_turn(number, step, text, partial, start)
            self.runner_check(
                f"step {number}",
                "turn_complete",
                False,
                f"the reply did not complete within {timeout:g} s (rule: quiet "
                f"{self.quiet_ms(step):g} ms): {exc}",
            )
            self.ended_by = "timeout"
            return False
        except Exception as exc:
            self.error = classify(exc, "turn", number)
            self.ended_by = "error"
            return False
        if reply.ended and self.ended_by is None:
            self.ended_by = "agent"
        turn = self.record_turn(number, step, text, reply, start)
        return self.check_turn(number, step, _Answer.of(reply), turn)

    def voice_turn(self, conv: Conversation, number: int, step: Step, timeout: float) -> bool:
        """Play one step of a ``webCall`` case: a clip (``user_audio``) or waiting for the agent
        (``expect_agent``); False stops the conversation."""
        clip: Optional[AudioSource]
        if step.kind == "user_audio":
            try:
                clip = WavSource(step.audio or "")
            except (OSError, ValueError, EOFError) as exc:
                self.runner_check(f"step {number}", "user_audio", False, f"cannot play: {exc}")
                return False
            start = None
        else:
            # After the first clip, a 20 ms silent clip opens a fresh turn to wait in.
            clip = Silence(FRAME_SAMPLES / SAMPLE_RATE) if self.clips else None
            start = self.mark if self.mark is not None else self.ready_time()
        if clip is not None:
            self.clips += 1
        heard = exchange(
            self.call,
            clip,
            start=start,
            deadline=time.monotonic() + timeout,
            silence=self.quiet_ms(step) / 1000.0,
            activity=self,
        )
        if step.kind == "user_audio" and heard.clip_started is not None:
            name = os.path.basename(step.audio or "")
            seconds = round(heard.start - heard.clip_started, 2)
            data = {"audio": name, "seconds": seconds}
            self.add_entry(heard.clip_started, "user", name, data, "audio")
        ended = conv.result is not None
        if heard.failure is not None and not ended:
            return self.voice_failure(number, step, heard, timeout)
        if ended and self.ended_by is None:
            self.ended_by = "agent"
        reason = "conversation_result" if ended else "audio_quiet"
        turn, answer = self.record_voice_turn(number, step, heard, reason)
        return self.check_turn(number, step, answer, turn)

    def voice_failure(self, number: int, step: Step, heard: Heard, timeout: float) -> bool:
        timed_out = isinstance(heard.failure, VoiceTimeout)
        if timed_out and heard.spoke:
            self.record_voice_turn(number, step, heard, "timeout")
            self.runner_check(
                f"step {number}",
                "turn_complete",
                False,
                f"the reply did not complete within {timeout:g} s (rule: audio_quiet "
                f"{self.quiet_ms(step):g} ms): {heard.failure}",
            )
        elif timed_out:
            self.error = ErrorInfo("timeout", f"no reply within {timeout:g} s", number)
        else:
            self.error = ErrorInfo("voice", str(heard.failure), number)
        self.ended_by = "timeout" if timed_out else "error"
        return False

    def record_voice_turn(
        self, number: int, step: Step, heard: Heard, reason: str
    ) -> Tuple[TurnRecord, _Answer]:
        opened = heard.start if heard.clip_started is None else heard.clip_started
        window = self.frames_between(opened, heard.end)
        texts = [
            m.text
            for _, m in window
            if isinstance(m, TextMessage) and _is_activity(m, self.rule) and m.text.strip()
        ]
        tools = [ToolSeen(m.tool_name, m.args) for _, m in window if isinstance(m, ToolRequest)]
        first_text = next((t for t, m in window if t >= heard.start and _is_text(m)), None)
        activity = [t for t, m in window if _is_activity(m, self.rule)]
        if heard.turn.last_audio_at is not None:
            activity.append(heard.turn.last_audio_at)
        answer = _Answer(" ".join(t.strip() for t in texts), texts, tools)
        turn = TurnRecord(
            step=number,
            kind=step.kind,
            user=None,
            reply=answer.text,
            reason=reason,
            first_text_ms=_since(first_text, heard.start),
            turn_ms=_since(max(activity, default=None), heard.start),
            detected_ms=round((heard.end - heard.start) * 1000.0, 1),
            tools=[t.name for t in tools],
            turn_end=self.settings.turn_end.describe(step.quiet_ms),
            first_audio_ms=heard.first_audio_ms,
            user_audio=os.path.basename(step.audio) if step.audio else None,
        )
        self.turns.append(turn)
        self.recordings.append((turn, heard.turn.index))
        self.mark = heard.end
        return turn, answer

    def ready_time(self) -> float:
        """When the conversation became ready (the ``connection`` event), for talk-first."""
        with self.lock:
            for t, message in self.frames:
                if isinstance(message, Event) and message.name in ("connection", "opened"):
                    return t
        return self.t0

    def record_turn(
        self, number: int, step: Step, text: Optional[str], reply: Reply, start: float
    ) -> TurnRecord:
        end = time.monotonic()
        frames = self.frames_between(start, end)
        first = next(
            (t for t, m in frames if isinstance(m, TextMessage) and m.from_assistant), None
        )
        activity = [t for t, m in frames if _is_activity(m, self.rule)]
        turn = TurnRecord(
            step=number,
            kind=step.kind,
            user=text,
            reply=reply.text,
            reason=str(reply.reason),
            first_text_ms=None if first is None else round((first - start) * 1000.0, 1),
            turn_ms=round((max(activity) - start) * 1000.0, 1) if activity else None,
            detected_ms=round((end - start) * 1000.0, 1),
            tools=[r.tool_name for r in reply.tool_requests],
            turn_end=self.settings.turn_end.describe(step.quiet_ms),
        )
        self.turns.append(turn)
        self.mark = end
        return turn

    def check_turn(self, number: int, step: Step, reply: _Answer, turn: TurnRecord) -> bool:
        scope = f"step {number}"
        for var, pattern in step.capture.items():
            found = re.search(pattern, reply.text)
            if found is None:
                self.runner_check(
                    scope, "capture", False, f"{var}: no match for {pattern!r}", f"capture {var}"
                )
                continue
            value = found.group(1) if found.re.groups else found.group(0)
            self.vars[var] = turn.captured[var] = value
        observed = Observed(
            scope="turn",
            text=reply.text,
            texts=list(reply.texts),
            tools=list(reply.tools),
            first_text_ms=[turn.first_text_ms],
            turn_ms=[turn.turn_ms],
            first_audio_ms=[turn.first_audio_ms],
            turns=len(self.turns),
            transcript=self.snapshot(),
            vars=dict(self.vars),
            target=self.target_kind,
        )
        return self.evaluate(step.expect, observed, scope)

    def evaluate(self, checks: List[Check], observed: Observed, scope: str) -> bool:
        for check in checks:
            try:
                self.checks.append(evaluate(check, observed, self.env, scope))
            except InfraError as exc:
                self.error = ErrorInfo("judge", str(exc))
                return False
        return True

    def terminate(self, conv: Conversation, number: Optional[int]) -> None:
        if self.ended_by is None and conv.phase is not Phase.ENDED and not conv.closed:
            self.ended_by = "client"
        try:
            conv.terminate(timeout=min(self.settings.timeouts.terminate_s, self.remaining()))
        except Exception as exc:
            self.error = classify(exc, "terminate", number)
            self.ended_by = "error"
        if self.ended_by is None:
            self.ended_by = "agent"

    def check_conversation(self) -> None:
        with self.lock:
            frames = list(self.frames)
        tools = [ToolSeen(m.tool_name, m.args) for _, m in frames if isinstance(m, ToolRequest)]
        for name in sorted({t.name for t in tools} - set(self.case.tools)):
            self.runner_check(
                "conversation",
                "tool_scripted",
                False,
                f"the agent requested tool {name!r}, which the case does not script "
                "(the client answered with an error)",
                f"tool {name} scripted",
            )
        observed = Observed(
            scope="conversation",
            text="\n".join(t.reply for t in self.turns if t.reply),
            texts=[text for t in self.turns for text in ([t.reply] if t.reply else [])],
            tools=tools,
            first_text_ms=[t.first_text_ms for t in self.turns],
            turn_ms=[t.turn_ms for t in self.turns],
            turns=len(self.turns),
            transcript=self.snapshot(),
            vars=dict(self.vars),
            target=self.target_kind,
            ended_by=self.ended_by,
            result=self.result,
            error_frames=[str(m.message) for _, m in frames if isinstance(m, ErrorMessage)],
            first_audio_ms=[t.first_audio_ms for t in self.turns],
        )
        self.evaluate(self.case.expect_conversation, observed, "conversation")

    def runner_check(
        self, scope: str, kind: str, passed: bool, message: str, label: Optional[str] = None
    ) -> None:
        self.checks.append(CheckResult(scope, kind, label or kind, passed, message))

    def snapshot(self) -> List[Entry]:
        with self.lock:
            return sorted(self.entries, key=lambda e: e.t_ms)

    # --- the outcome -----------------------------------------------------------------------------

    def finish(self) -> Attempt:
        score = weighted_score(self.checks)
        min_score = self.settings.pass_if.min_score
        if self.error is not None:
            status = Status.ERROR
        elif min_score is None:
            status = (
                Status.FAILED
                if any(not c.passed and c.weight > 0 for c in self.checks)
                else Status.PASSED
            )
        else:
            status = Status.PASSED if score is None or score >= min_score else Status.FAILED
        if self.error is not None and self.ended_by is None:
            self.ended_by = "error"
        return Attempt(
            number=self.job.attempt,
            status=status,
            started_at=self.started_at,
            duration_s=round(time.monotonic() - self.t0, 3),
            error=self.error,
            checks=self.checks,
            score=score,
            turns=self.turns,
            transcript=self.snapshot(),
            ended_by=self.ended_by,
            result=self.result,
            record_id=self.record_id,
            close_code=self.close_code,
            vars={k: v for k, v in self.vars.items() if k not in ("case_id", "repeat")},
            worker=f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}",
        )


def _is_activity(message: Message, rule: TurnRule) -> bool:
    if isinstance(message, TextMessage):
        return message.from_assistant and not message.partial and not rule.is_filler(message.text)
    return isinstance(message, (ToolRequest, ToolCallResult))


def _is_text(message: Message) -> bool:
    return isinstance(message, TextMessage) and message.from_assistant


def _since(t: Optional[float], start: float) -> Optional[float]:
    return None if t is None else round((t - start) * 1000.0, 1)


def _safe(name: str) -> str:
    """``name`` as one path component."""
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "_"


def _result_dict(result: ConversationResult) -> Dict[str, Any]:
    return {
        "status": None if result.status is None else str(result.status),
        "error_message": None if result.error_message is None else str(result.error_message),
        "data": result.result if isinstance(result.result, dict) else None,
    }
