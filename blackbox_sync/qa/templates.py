"""``{{name}}`` templates in case files: user texts, additional data, expected values, tool results.

A name is a variable of the case (suite ``vars``, case ``vars``, CSV columns, captures); dotted
names reach into mappings (``{{args.orderNumber}}`` in a canned tool result). A string that is
exactly one ``{{name}}`` becomes the variable's value with its type (a number stays a number);
anywhere else the value is written into the text.
"""

import re
from typing import Any, Mapping

from blackbox_sync.errors import BlackBoxError

TEMPLATE = re.compile(r"\{\{\s*([A-Za-z_][\w.-]*)\s*\}\}")


class TemplateError(BlackBoxError, KeyError):
    """A template names a variable the case does not have."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"unknown variable {{{{{self.name}}}}}"


def lookup(values: Mapping[str, Any], name: str) -> Any:
    """The value of ``name`` (dotted for nested mappings); raises :class:`TemplateError`."""
    if name in values:
        return values[name]
    current: Any = values
    for part in name.split("."):
        if not isinstance(current, Mapping) or part not in current:
            raise TemplateError(name)
        current = current[part]
    return current


def render(value: Any, values: Mapping[str, Any]) -> Any:
    """``value`` with every template filled, recursively through lists and mappings."""
    if isinstance(value, str):
        return render_text(value, values)
    if isinstance(value, Mapping):
        return {k: render(v, values) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [render(v, values) for v in value]
    return value


def render_text(text: str, values: Mapping[str, Any]) -> Any:
    """One string: a lone ``{{name}}`` keeps the value's type, otherwise text is substituted."""
    if "{{" not in text:
        return text
    whole = TEMPLATE.fullmatch(text.strip())
    if whole is not None:
        return lookup(values, whole.group(1))
    return TEMPLATE.sub(lambda m: str(lookup(values, m.group(1))), text)


def names(value: Any) -> "set[str]":
    """Every variable name the templates in ``value`` use."""
    if isinstance(value, str):
        return {m.group(1) for m in TEMPLATE.finditer(value)}
    if isinstance(value, Mapping):
        return set().union(*(names(v) for v in value.values())) if value else set()
    if isinstance(value, (list, tuple)):
        return set().union(*(names(v) for v in value)) if value else set()
    return set()
