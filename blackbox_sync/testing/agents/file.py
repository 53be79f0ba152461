"""Agent files: a :class:`~.scripted.ScriptedAgent` written as JSON or YAML.

Top-level keys (all optional)::

    name: support-bot
    echo: true                  # echo user messages as text frames with source "user"
    tool_timeout: 10            # seconds to wait for a websocketToolResponse
    announce_tool_calls: false  # send an informational toolCall frame before each request
    greeting: "Hi! How can I help?"          # text, list of texts, or a reply body (below)
    default: "Sorry, I did not get that."    # same; null = stay silent
    rules:                                   # first match wins
      - match: "order"          # case-insensitive substring ... or `regex: "ORD-\\\\d+"`
        fillers: ["um"]
        partials: ["Let me", "Let me check"]
        tools:
          - {name: checkOrderStatus, args: {orderNumber: "{match[0]}"}, timeout: 5}
        parallel_tools: false   # true: request every tool at once, answers in any order
        reply: ["Your order is {result[status]}."]   # text or list (a split reply)
        delay: 0.2              # before the first frame
        chunk_delay: 0.1        # between frames
        times: 1                # fire at most once per conversation
        raw_frames: ['{"type": "mystery"}', {type: weird}]
        end_conversation: false
      - regex: "\\\\bbye\\\\b"
        steps:                  # explicit order instead of the keys above
          - say: "Goodbye!"
          - partial: "..."
          - pause: 0.1
          - tool: {name: logout, args: {}}
          - raw: {type: weird}
          - end: true           # or {status: Failed, error_message: "..."}

A reply body (greeting, default, a rule without its ``match``/``regex``/``times``) takes the same
keys as a rule. Unknown keys are errors, so a typo fails loudly with its place in the file.
"""

import importlib
import json
import re
from os import PathLike
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

from blackbox_sync.errors import BlackBoxError
from blackbox_sync.testing.agents.scripted import (
    AgentFormat,
    CallTool,
    End,
    Pause,
    ReplySpec,
    Rule,
    Say,
    ScriptedAgent,
    SendRaw,
    Step,
    register_agent_format,
)

_AGENT_KEYS = {
    "name",
    "echo",
    "tool_timeout",
    "announce_tool_calls",
    "greeting",
    "default",
    "rules",
}
_BODY_KEYS = {
    "reply", "fillers", "partials", "tools", "parallel_tools", "raw_frames", "delay",
    "chunk_delay", "end_conversation", "steps",
}  # fmt: skip
_RULE_KEYS = _BODY_KEYS | {"match", "regex", "times"}
_TOOL_KEYS = {"name", "args", "id", "timeout"}
_END_KEYS = {"status", "error_message"}


class AgentFileError(BlackBoxError, ValueError):
    """An agent file or dict is not valid; the message says where."""


def load_agent_file(path: "Union[str, PathLike[str]]") -> ScriptedAgent:
    """Read an agent from ``.json``, ``.yaml`` or ``.yml``."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise AgentFileError(f"{file}: agent files end in .json, .yaml or .yml")
    text = file.read_text(encoding="utf-8")
    if suffix != ".json":
        try:  # optional, and without type stubs everywhere: imported by name
            yaml = importlib.import_module("yaml")
        except ImportError:
            raise AgentFileError(
                f"{file}: reading YAML needs PyYAML (pip install pyyaml)"
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise AgentFileError(f"{file}: not valid YAML: {exc}") from None
    else:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise AgentFileError(f"{file}: not valid JSON: {exc}") from None
    try:
        return agent_from_dict(data)
    except AgentFileError as exc:
        raise AgentFileError(f"{file}: {exc}") from None


def agent_from_dict(data: Any) -> ScriptedAgent:
    """Build a :class:`ScriptedAgent` from the agent-file structure."""
    obj = _mapping(data, "agent", _AGENT_KEYS)
    rules = obj.get("rules", [])
    if not isinstance(rules, list):
        raise AgentFileError(f"rules: expected a list, got {type(rules).__name__}")
    options: Dict[str, Any] = {}
    if "default" in obj:  # absent = the agent's own default reply; null = stay silent
        options["default"] = _reply(obj["default"], "default")
    try:
        return ScriptedAgent(
            [_rule(r, f"rules[{i}]") for i, r in enumerate(rules)],
            greeting=_reply(obj.get("greeting"), "greeting"),
            echo=_typed(obj.get("echo", True), bool, "echo"),
            tool_timeout=_number(obj.get("tool_timeout", 10.0), "tool_timeout"),
            announce_tool_calls=_typed(
                obj.get("announce_tool_calls", False), bool, "announce_tool_calls"
            ),
            name=_optional_text(obj.get("name"), "name"),
            **options,
        )
    except AgentFileError:
        raise
    except (TypeError, ValueError) as exc:
        raise AgentFileError(str(exc)) from None


def _reply(value: Any, where: str) -> ReplySpec:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        return [_typed(v, str, f"{where}[{i}]") for i, v in enumerate(value)]
    return _rule(value, where, body_only=True)


def _rule(value: Any, where: str, body_only: bool = False) -> Rule:
    obj = _mapping(value, where, _BODY_KEYS if body_only else _RULE_KEYS)
    if body_only:
        pattern, regex = "", False
    elif ("match" in obj) == ("regex" in obj):
        raise AgentFileError(f"{where}: give exactly one of 'match' (substring) or 'regex'")
    else:
        key = "regex" if "regex" in obj else "match"
        pattern, regex = _typed(obj[key], str, f"{where}.{key}"), key == "regex"
    times = obj.get("times")
    try:
        return Rule(
            pattern,
            _texts(obj.get("reply"), f"{where}.reply"),
            regex=regex,
            fillers=_texts(obj.get("fillers"), f"{where}.fillers"),
            partials=_texts(obj.get("partials"), f"{where}.partials"),
            tools=[
                _tool(t, f"{where}.tools[{i}]") for i, t in enumerate(_list(obj, "tools", where))
            ],
            parallel_tools=_typed(
                obj.get("parallel_tools", False), bool, f"{where}.parallel_tools"
            ),
            raw_frames=[
                _raw(f, f"{where}.raw_frames[{i}]")
                for i, f in enumerate(_list(obj, "raw_frames", where))
            ],
            delay=_number(obj.get("delay", 0.0), f"{where}.delay"),
            chunk_delay=_number(obj.get("chunk_delay", 0.0), f"{where}.chunk_delay"),
            end_conversation=_typed(
                obj.get("end_conversation", False), bool, f"{where}.end_conversation"
            ),
            times=None if times is None else _typed(times, int, f"{where}.times"),
            steps=[
                _step(s, f"{where}.steps[{i}]") for i, s in enumerate(_list(obj, "steps", where))
            ],
        )
    except AgentFileError:
        raise
    except (TypeError, ValueError, re.error) as exc:
        raise AgentFileError(f"{where}: {exc}") from None


def _step(value: Any, where: str) -> Step:
    if not isinstance(value, dict) or len(value) != 1:
        raise AgentFileError(
            f"{where}: a step is a one-key mapping (say, partial, pause, tool, raw, end)"
        )
    ((kind, arg),) = value.items()
    if kind == "say":
        return Say(_typed(arg, str, f"{where}.say"))
    if kind == "partial":
        return Say(_typed(arg, str, f"{where}.partial"), partial=True)
    if kind == "pause":
        return Pause(_number(arg, f"{where}.pause"))
    if kind == "tool":
        return _tool(arg, f"{where}.tool")
    if kind == "raw":
        return SendRaw(_raw(arg, f"{where}.raw"))
    if kind == "end":
        if arg is True:
            return End()
        end = _mapping(arg, f"{where}.end", _END_KEYS)
        return End(
            status=_typed(end.get("status", "Completed"), str, f"{where}.end.status"),
            error_message=_optional_text(end.get("error_message"), f"{where}.end.error_message"),
        )
    raise AgentFileError(f"{where}: unknown step {kind!r} (say, partial, pause, tool, raw, end)")


def _tool(value: Any, where: str) -> CallTool:
    obj = _mapping(value, where, _TOOL_KEYS)
    if "name" not in obj:
        raise AgentFileError(f"{where}: a tool needs a 'name'")
    timeout = obj.get("timeout")
    return CallTool(
        name=_typed(obj["name"], str, f"{where}.name"),
        args=obj.get("args", {}),
        id=_optional_text(obj.get("id"), f"{where}.id"),
        timeout=None if timeout is None else _number(timeout, f"{where}.timeout"),
    )


def _raw(value: Any, where: str) -> Union[str, Dict[str, Any]]:
    if isinstance(value, (str, dict)):
        return value
    raise AgentFileError(
        f"{where}: a raw frame is a string (sent as is) or a mapping (sent as JSON)"
    )


def _mapping(value: Any, where: str, allowed: "set[str]") -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise AgentFileError(f"{where}: expected a mapping, got {type(value).__name__}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise AgentFileError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(allowed))}"
        )
    return value


def _list(obj: Mapping[str, Any], key: str, where: str) -> List[Any]:
    value = obj.get(key, [])
    if not isinstance(value, list):
        raise AgentFileError(f"{where}.{key}: expected a list, got {type(value).__name__}")
    return value


def _texts(value: Any, where: str) -> List[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise AgentFileError(f"{where}: expected text or a list of texts")
    return [_typed(v, str, f"{where}[{i}]") for i, v in enumerate(items)]


def _typed(value: Any, kind: type, where: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise AgentFileError(f"{where}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AgentFileError(f"{where}: expected a number, got {type(value).__name__}")
    return float(value)


def _optional_text(value: Any, where: str) -> Optional[str]:
    return None if value is None else str(_typed(value, str, where))


register_agent_format(AgentFormat(from_dict=agent_from_dict, from_file=load_agent_file))
