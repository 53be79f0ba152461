"""The JSON Schema of suite files (YAML or JSON), shipped as data: ``blackbox-sync qa schema``
prints it for editors and CI linters.

The schema checks shapes; the loader then checks what a schema cannot say well (one assertion
type per check, conversation-only checks in the right place, unique ids, references that
resolve), with the same line-numbered messages. ``x-error`` is our own keyword: the message to
show when a ``oneOf`` fails, instead of the validator's generic one.
"""

from typing import Any, Dict

from blackbox_sync.qa.spec import CALL_TYPES

SCHEMA_ID = "https://blackbox-sync.invalid/schemas/qa-suite-1.json"

_TEXT = {"type": "string"}
_TEXTS = {"type": "array", "items": _TEXT, "minItems": 1}
_COUNT = {"type": "integer", "minimum": 0}
_MS = {"type": "number", "exclusiveMinimum": 0}

TEXT_CHECKS: Dict[str, Any] = {
    "equals": _TEXT,
    "contains": _TEXT,
    "icontains": _TEXT,
    "not_contains": _TEXT,
    "starts_with": _TEXT,
    "regex": _TEXT,
    "contains_any": _TEXTS,
    "contains_all": _TEXTS,
    "max_length": _COUNT,
}
TOOL_CHECKS: Dict[str, Any] = {
    "tool_called": {
        "oneOf": [
            _TEXT,
            {
                "type": "object",
                "properties": {
                    "name": _TEXT,
                    "args": {"type": "object"},
                    "mode": {"enum": ["partial", "exact"]},
                },
                "required": ["name"],
                "additionalProperties": False,
            },
        ],
        "x-error": "tool_called takes a tool name or {name, args, mode: partial|exact}",
    },
    "tool_not_called": _TEXT,
    "tool_sequence": {
        "oneOf": [
            _TEXTS,
            {
                "type": "object",
                "properties": {"steps": _TEXTS, "mode": {"enum": ["in_order", "exact"]}},
                "required": ["steps"],
                "additionalProperties": False,
            },
        ],
        "x-error": "tool_sequence takes a list of tool names or {steps: [...], mode}",
    },
    "tool_count": {
        "type": "object",
        "properties": {"name": _TEXT, "count": _COUNT, "min": _COUNT, "max": _COUNT},
        "minProperties": 1,
        "additionalProperties": False,
    },
}
LATENCY_CHECKS: Dict[str, Any] = {"first_text_ms": _MS, "first_audio_ms": _MS, "turn_ms": _MS}
VOICE_CHECKS = ("first_audio_ms",)
"""Checks that need a ``webCall`` conversation (the loader says so when they have none)."""
CONVERSATION_CHECKS: Dict[str, Any] = {
    "result": {"type": "object", "minProperties": 1},
    "ended_by": {"enum": ["agent", "client", "error", "timeout"]},
    "max_turns": _COUNT,
    "no_error_frames": {"const": True},
}
CUSTOM_CHECKS: Dict[str, Any] = {
    "python": {
        "oneOf": [
            _TEXT,
            {
                "type": "object",
                "properties": {"function": _TEXT, "args": {"type": "object"}},
                "required": ["function"],
                "additionalProperties": False,
            },
        ],
        "x-error": "python takes 'module:function' or {function: 'module:function', args: {...}}",
    },
    "judge": {
        "oneOf": [
            _TEXT,
            {
                "type": "object",
                "properties": {
                    "criteria": {"oneOf": [_TEXT, _TEXTS]},
                    "threshold": {"type": "number", "minimum": 0, "maximum": 1},
                    "judge": _TEXT,
                },
                "required": ["criteria"],
                "additionalProperties": False,
            },
        ],
        "x-error": "judge takes criteria text or {criteria, threshold, judge}",
    },
}
CHECK_TYPES: Dict[str, Any] = {
    **TEXT_CHECKS,
    **TOOL_CHECKS,
    **LATENCY_CHECKS,
    **CONVERSATION_CHECKS,
    **CUSTOM_CHECKS,
}
CHECK_MODIFIERS: Dict[str, Any] = {
    "not": {"type": "boolean"},
    "weight": {"type": "number", "minimum": 0},
    "name": _TEXT,
}

_CHECK = {
    "type": "object",
    "properties": {**CHECK_TYPES, "llm_rubric": CHECK_TYPES["judge"], **CHECK_MODIFIERS},
    "additionalProperties": False,
    "minProperties": 1,
}
_CHECKS = {"type": "array", "items": {"$ref": "#/$defs/check"}}
_CAPTURE = {"type": "object", "additionalProperties": _TEXT}

_STEP_OPTIONS = {
    "expect": _CHECKS,
    "capture": _CAPTURE,
    "timeout_s": _MS,
    "quiet_ms": {"type": "number", "minimum": 0},
}
_STEP_KINDS: Dict[str, Any] = {
    "user": _TEXT,
    "user_audio": {"type": "string", "minLength": 1},
    "expect_agent": {
        "oneOf": [{"type": "boolean"}, _CHECKS],
        "x-error": "expect_agent takes true or a list of checks",
    },
    "wait": {"type": "number", "minimum": 0},
    "terminate": {"const": True},
}
_STEP = {
    "type": "object",
    "properties": {**_STEP_KINDS, **_STEP_OPTIONS},
    "additionalProperties": False,
    "oneOf": [{"required": [kind]} for kind in _STEP_KINDS],
    "x-error": "a step needs exactly one of: user, expect_agent, wait, terminate, user_audio",
}
_TOOL = {
    "type": "object",
    "properties": {
        "result": {},
        "results": {"type": "array", "minItems": 1},
        "handler": _TEXT,
        "error": _TEXT,
    },
    "additionalProperties": False,
    "oneOf": [{"required": [key]} for key in ("result", "results", "handler", "error")],
    "x-error": "a tool takes exactly one of: result, results, handler, error",
}
_SETTINGS: Dict[str, Any] = {
    "timeouts": {
        "type": "object",
        "properties": dict.fromkeys(("connect_s", "turn_s", "terminate_s", "conversation_s"), _MS),
        "additionalProperties": False,
    },
    "turn_end": {
        "type": "object",
        "properties": {
            "quiet_ms": {"type": "number", "minimum": 0},
            "fillers": {"type": "array", "items": _TEXT},
        },
        "additionalProperties": False,
    },
    "retries": _COUNT,
    "retry_backoff_s": {"type": "number", "minimum": 0},
    "repeat": {"type": "integer", "minimum": 1},
    "talk_first": {"type": "boolean"},
    "call_type": {"enum": list(CALL_TYPES)},
    "pass_if": {
        "type": "object",
        "properties": {
            "min_pass_rate": {"type": "number", "minimum": 0, "maximum": 1},
            "min_score": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "additionalProperties": False,
    },
}
_VARS = {"type": "object", "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}}
_COMMON = {
    "vars": _VARS,
    "additional_data": {"type": "object"},
    "tools": {"type": "object", "additionalProperties": {"$ref": "#/$defs/tool"}},
}
_CONVERSATION = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": r"^[^\s/\\]+$"},
        "description": _TEXT,
        "tags": {"type": "array", "items": _TEXT},
        "steps": {"type": "array", "items": {"$ref": "#/$defs/step"}, "minItems": 1},
        "expect_conversation": _CHECKS,
        **_COMMON,
        **_SETTINGS,
    },
    "required": ["id", "steps"],
    "additionalProperties": False,
}

SUITE_SCHEMA: Dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "blackbox_sync QA suite",
    "type": "object",
    "properties": {
        "suite": _TEXT,
        "description": _TEXT,
        "defaults": {
            "type": "object",
            "properties": {**_SETTINGS, "judge": _TEXT},
            "additionalProperties": False,
        },
        "target": {
            "type": "object",
            "properties": {
                "emulator": {
                    "type": "object",
                    "properties": {"agent": _TEXT},
                    "additionalProperties": False,
                },
                "live": {
                    "type": "object",
                    "properties": dict.fromkeys(
                        ("base_url", "integration_id", "agent_id", "origin"), _TEXT
                    ),
                    "additionalProperties": False,
                },
            },
            "additionalProperties": False,
        },
        **_COMMON,
        "conversations": {
            "type": "array",
            "items": {"$ref": "#/$defs/conversation"},
            "minItems": 1,
        },
    },
    "required": ["conversations"],
    "additionalProperties": False,
    "$defs": {
        "check": _CHECK,
        "step": _STEP,
        "tool": _TOOL,
        "conversation": _CONVERSATION,
    },
}
