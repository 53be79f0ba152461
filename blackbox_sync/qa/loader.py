"""Load suite files: parse, validate against the shipped JSON Schema, check the rest, build specs.

Every problem carries its line and column, and all problems of a file are reported at once
(:class:`~.sources.SuiteFileError`).
"""

import os
import re
import wave
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Set, Union

import jsonschema

from blackbox_sync.qa import refs, templates
from blackbox_sync.qa.schema import (
    CHECK_MODIFIERS,
    CONVERSATION_CHECKS,
    SUITE_SCHEMA,
    VOICE_CHECKS,
)
from blackbox_sync.qa.sources import Path_, Problem, Source, SuiteFileError, read
from blackbox_sync.qa.spec import (
    STEP_KINDS,
    Case,
    Check,
    PassIf,
    Settings,
    Step,
    Suite,
    Timeouts,
    ToolScript,
    TurnEndSpec,
)

BUILTIN_VARS = ("case_id", "repeat")
"""Variables every case has: its id and the repeat number (1-based)."""

_VALIDATOR = jsonschema.Draft202012Validator(SUITE_SCHEMA)


def load_suite(path: "Union[str, os.PathLike[str]]") -> Suite:
    """Read and check a suite (``.yaml``, ``.yml``, ``.json`` or the ``.csv`` shorthand)."""
    file = Path(path)
    source = read(file)
    return build_suite(source, str(file), base_dir=str(file.resolve().parent))


def load_suite_data(data: Any, name: str = "<data>", base_dir: Optional[str] = None) -> Suite:
    """Check and build a suite from data already in memory (the structure of a YAML file)."""
    return build_suite(Source(data), name, base_dir=base_dir or os.getcwd())


def validate(source: Source) -> List[Problem]:
    """Schema problems of a parsed file, in file order."""
    problems: List[Problem] = []
    for error in _VALIDATOR.iter_errors(source.data):
        problems.extend(_explain(error, source))
    return sorted(_unique(problems), key=lambda p: (p.line or 0, p.column or 0, p.message))


def build_suite(source: Source, name: str, base_dir: Optional[str]) -> Suite:
    """Validate ``source`` and turn it into a :class:`Suite`; raises :class:`SuiteFileError`."""
    problems = validate(source)
    if problems:
        raise SuiteFileError(name, problems)
    builder = _Builder(source, base_dir)
    suite = builder.suite(Path(name).stem if name != "<data>" else "suite")
    if builder.problems:
        raise SuiteFileError(name, sorted(builder.problems, key=lambda p: p.line or 0))
    suite.path = name
    return suite


# --- schema errors → readable problems -----------------------------------------------------------


def _explain(error: "jsonschema.ValidationError", source: Source) -> Iterable[Problem]:
    path = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = sorted(schema.get("properties", {}))
        for key in sorted(set(error.instance) - set(known), key=str):
            yield source.problem(f"unknown key {key!r}; known: {', '.join(known)}", (*path, key))
        return
    if error.validator in ("oneOf", "anyOf") and "x-error" in schema:
        yield source.problem(str(schema["x-error"]), path)
        return
    yield source.problem(error.message, path)


def _unique(problems: List[Problem]) -> List[Problem]:
    seen: Set[Any] = set()
    out = []
    for p in problems:
        key = (p.line, p.column, p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


# --- building specs ------------------------------------------------------------------------------


class _Builder:
    """Turns validated data into specs, collecting the problems the schema cannot see."""

    def __init__(self, source: Source, base_dir: Optional[str]) -> None:
        self.source = source
        self.base_dir = base_dir
        self.problems: List[Problem] = []
        self.file = ""

    def fail(self, message: str, path: Path_) -> None:
        self.problems.append(self.source.problem(message, path))

    def where(self, path: Path_) -> str:
        line, _ = self.source.at(path)
        return f"line {line}" if line else ""

    def suite(self, default_name: str) -> Suite:
        data: Dict[str, Any] = self.source.data
        defaults_data = data.get("defaults", {})
        defaults = self.settings(defaults_data, Settings())
        judge = defaults_data.get("judge")
        if judge is not None:
            self.resolvable(judge, ("defaults", "judge"))
        tools = self.tools(data.get("tools", {}), ("tools",))
        cases = []
        seen: Dict[str, int] = {}
        for index, item in enumerate(data["conversations"]):
            path: Path_ = ("conversations", index)
            case = self.case(item, path, data, defaults, tools)
            if case.id in seen:
                self.fail(f"duplicate conversation id {case.id!r}", (*path, "id"))
            seen[case.id] = index
            cases.append(case)
        target = data.get("target", {})
        agent = target.get("emulator", {}).get("agent")
        return Suite(
            name=data.get("suite") or default_name,
            cases=cases,
            base_dir=self.base_dir,
            description=data.get("description", ""),
            judge=judge,
            emulator_agent=self.relative(agent) if agent else None,
            live=dict(target.get("live", {})),
        )

    def relative(self, path: str) -> str:
        if os.path.isabs(path) or not self.base_dir:
            return path
        return os.path.join(self.base_dir, path)

    def settings(self, data: Dict[str, Any], base: Settings) -> Settings:
        timeouts = Timeouts(**{**_fields(base.timeouts), **data.get("timeouts", {})})
        turn_end = data.get("turn_end", {})
        call_type = data.get("call_type", base.call_type)
        return Settings(
            timeouts=timeouts,
            turn_end=TurnEndSpec(
                quiet_ms=float(turn_end.get("quiet_ms", base.turn_end.quiet_ms)),
                fillers=tuple(turn_end.get("fillers", base.turn_end.fillers)),
                voice=call_type == "webCall",
            ),
            retries=data.get("retries", base.retries),
            retry_backoff_s=float(data.get("retry_backoff_s", base.retry_backoff_s)),
            repeat=data.get("repeat", base.repeat),
            pass_if=PassIf(**{**_fields(base.pass_if), **data.get("pass_if", {})}),
            talk_first=data.get("talk_first", base.talk_first),
            call_type=call_type,
        )

    def tools(self, data: Dict[str, Any], path: Path_) -> Dict[str, ToolScript]:
        out = {}
        for name, spec in data.items():
            if "handler" in spec:
                self.resolvable(spec["handler"], (*path, name, "handler"))
            out[name] = ToolScript(
                result=spec.get("result"),
                results=spec.get("results"),
                handler=spec.get("handler"),
                error=spec.get("error"),
            )
        return out

    def resolvable(self, ref: str, path: Path_) -> None:
        try:
            refs.resolve(ref, self.base_dir)
        except refs.RefError as exc:
            self.fail(str(exc), path)

    def case(
        self,
        item: Dict[str, Any],
        path: Path_,
        suite: Dict[str, Any],
        defaults: Settings,
        suite_tools: Dict[str, ToolScript],
    ) -> Case:
        variables = {**suite.get("vars", {}), **item.get("vars", {})}
        known = set(variables) | set(BUILTIN_VARS)
        additional = {**suite.get("additional_data", {}), **item.get("additional_data", {})}
        self.templates_known(additional, known, (*path, "additional_data"))
        settings = self.settings(item, defaults)
        voice = settings.call_type == "webCall"
        steps = []
        terminated = False
        for index, step_data in enumerate(item["steps"]):
            step_path = (*path, "steps", index)
            if terminated:
                self.fail("no step may follow 'terminate'", step_path)
            step = self.step(step_data, step_path, known, voice)
            terminated = terminated or step.kind == "terminate"
            known |= set(step.capture)
            steps.append(step)
        conversation_checks = [
            self.check(c, (*path, "expect_conversation", i), known, voice, conversation=True)
            for i, c in enumerate(item.get("expect_conversation", []))
        ]
        return Case(
            id=item["id"],
            steps=steps,
            expect_conversation=conversation_checks,
            description=item.get("description", ""),
            tags=tuple(item.get("tags", ())),
            vars=variables,
            additional_data=additional,
            tools={**suite_tools, **self.tools(item.get("tools", {}), (*path, "tools"))},
            settings=settings,
            where=self.where(path),
        )

    def step(self, data: Dict[str, Any], path: Path_, known: Set[str], voice: bool) -> Step:
        kind = next(k for k in STEP_KINDS if k in data)
        checks: List[Dict[str, Any]] = list(data.get("expect", []))
        offsets = [(*path, "expect", i) for i in range(len(checks))]
        if kind == "expect_agent" and isinstance(data["expect_agent"], list):
            checks = list(data["expect_agent"]) + checks
            offsets = [(*path, "expect_agent", i) for i in range(len(data["expect_agent"]))] + [
                (*path, "expect", i) for i in range(len(data.get("expect", [])))
            ]
        if kind in ("wait", "terminate"):
            for key in ("expect", "capture", "quiet_ms"):
                if key in data:
                    self.fail(f"a {kind} step takes no {key!r}", (*path, key))
        if kind == "user":
            self.templates_known(data["user"], known, (*path, "user"))
            if voice:
                self.fail(
                    "a webCall conversation speaks with user_audio steps, not text 'user' steps",
                    (*path, "user"),
                )
        audio = (
            self.audio(data["user_audio"], (*path, "user_audio"), voice)
            if kind == "user_audio"
            else None
        )
        capture = dict(data.get("capture", {}))
        for var, pattern in capture.items():
            self.regex(pattern, (*path, "capture", var))
        return Step(
            kind=kind,
            text=data.get("user"),
            audio=audio,
            seconds=float(data.get("wait", 0.0)),
            expect=[self.check(c, offsets[i], known, voice) for i, c in enumerate(checks)],
            capture=capture,
            timeout_s=data.get("timeout_s"),
            quiet_ms=data.get("quiet_ms"),
            where=self.where(path),
        )

    def audio(self, name: str, path: Path_, voice: bool) -> str:
        """The absolute path of a ``user_audio`` file, after checking it is a usable WAV."""
        file = self.relative(name)
        if not voice:
            self.fail("user_audio needs a voice call: set call_type: webCall", path)
        problem = _wav_problem(file)
        if problem:
            self.fail(f"user_audio {name!r}: {problem}", path)
        return os.path.abspath(file)

    def check(
        self,
        data: Dict[str, Any],
        path: Path_,
        known: Set[str],
        voice: bool,
        conversation: bool = False,
    ) -> Check:
        kinds = [k for k in data if k not in CHECK_MODIFIERS]
        if len(kinds) != 1:
            self.fail(
                "a check needs exactly one assertion type, got "
                + (", ".join(kinds) if kinds else "none"),
                path,
            )
            return Check(kind="invalid", value=None)
        kind = "judge" if kinds[0] == "llm_rubric" else kinds[0]
        value = data[kinds[0]]
        if kind in CONVERSATION_CHECKS and not conversation:
            self.fail(f"{kind!r} checks the whole conversation: use expect_conversation", path)
        if kind in VOICE_CHECKS and not voice:
            self.fail(f"{kind!r} times agent audio: it needs call_type: webCall", path)
        if kind == "regex" and not templates.names(value):
            self.regex(value, (*path, kinds[0]))
        if kind == "python":
            self.resolvable(value if isinstance(value, str) else value["function"], path)
        if kind == "judge" and isinstance(value, dict) and "judge" in value:
            self.resolvable(value["judge"], (*path, kinds[0], "judge"))
        self.templates_known(value, known, (*path, kinds[0]))
        return Check(
            kind=kind,
            value=value,
            negate=bool(data.get("not", False)),
            weight=float(data.get("weight", 1.0)),
            name=data.get("name"),
            where=self.where(path),
        )

    def regex(self, pattern: str, path: Path_) -> None:
        try:
            re.compile(pattern)
        except re.error as exc:
            self.fail(f"bad regular expression {pattern!r}: {exc}", path)

    def templates_known(self, value: Any, known: Set[str], path: Path_) -> None:
        for name in sorted(templates.names(value)):
            if name.split(".")[0] not in known:
                self.fail(
                    f"unknown variable {{{{{name}}}}} (define it in vars or capture it earlier)",
                    path,
                )


def _wav_problem(file: str) -> Optional[str]:
    """Why ``file`` cannot be played as a user turn, or ``None``; reads the header only."""
    if not os.path.isfile(file):
        return f"no such file {file!r} (paths are relative to the suite file)"
    try:
        with wave.open(file, "rb") as wav:
            frames = wav.getnframes()
    except (wave.Error, EOFError) as exc:
        return f"not a PCM WAV file ({exc})"
    except OSError as exc:
        return f"cannot read it ({exc})"
    return None if frames > 0 else "the WAV file holds no audio"


def _fields(obj: Any) -> Dict[str, Any]:
    import attrs

    return attrs.asdict(obj, recurse=False)
