"""Reading suite files into plain data plus a map of where each value sits (line, column).

YAML and JSON are parsed by their usual libraries; positions come from PyYAML's node tree (JSON
is read that way too, for positions only). The CSV shorthand turns rows into the same data shape,
one conversation per row, so every later check reports a line number whatever the format.
"""

import csv
import importlib
import io
import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import attrs

from blackbox_sync.errors import BlackBoxError

Path_ = Tuple[Any, ...]
Positions = Dict[Path_, Tuple[int, int]]


@attrs.define
class Problem:
    """One thing wrong with a suite file."""

    message: str
    path: Path_ = ()
    line: Optional[int] = None
    column: Optional[int] = None

    def format(self, file: str) -> str:
        """``file:line:column: where: message``."""
        place = file
        if self.line is not None:
            place += f":{self.line}" + (f":{self.column}" if self.column else "")
        where = dotted(self.path)
        return f"{place}: {where + ': ' if where else ''}{self.message}"


def dotted(path: Path_) -> str:
    """``conversations[2].steps[0].expect`` for a path tuple."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class SuiteFileError(BlackBoxError, ValueError):
    """A suite file that cannot be used; ``problems`` lists every reason with its line."""

    def __init__(self, file: str, problems: List[Problem]) -> None:
        self.file = file
        self.problems = problems
        lines = [p.format(file) for p in problems]
        super().__init__("\n".join(lines) if lines else f"{file}: invalid suite")


@attrs.define
class Source:
    """A parsed file: its data and where each value is."""

    data: Any
    positions: Positions = attrs.field(factory=dict)

    def at(self, path: Path_) -> Tuple[Optional[int], Optional[int]]:
        """The line and column of ``path``, or of its nearest located parent."""
        for end in range(len(path), -1, -1):
            found = self.positions.get(tuple(path[:end]))
            if found is not None:
                return found
        return None, None

    def problem(self, message: str, path: Path_) -> Problem:
        """A :class:`Problem` located at ``path``."""
        line, column = self.at(path)
        return Problem(message, tuple(path), line, column)


def read(file: Path) -> Source:
    """Parse ``.yaml``/``.yml``, ``.json`` or ``.csv``; raises :class:`SuiteFileError`."""
    suffix = file.suffix.lower()
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteFileError(str(file), [Problem(f"cannot read: {exc}")]) from None
    if suffix in (".yaml", ".yml"):
        return _read_yaml(str(file), text)
    if suffix == ".json":
        return _read_json(str(file), text)
    if suffix == ".csv":
        return read_csv(str(file), text)
    raise SuiteFileError(str(file), [Problem("suite files end in .yaml, .yml, .json or .csv")])


def _yaml() -> Any:
    # PyYAML ships no type stubs everywhere, so it is imported by name (as agent files do).
    return importlib.import_module("yaml")


MAX_DEPTH = 100
"""How deeply lists and mappings may nest in a suite file; real suites need under ten levels,
and a bound keeps a hostile file from exhausting the stack."""


def _check_yaml_events(yaml: Any, text: str) -> None:
    """Refuse aliases and nesting deeper than :data:`MAX_DEPTH` before anything is built.

    PyYAML's parser is a state machine, so this streaming pass is cheap and cannot recurse; the
    composer and constructor that follow would, and an alias bomb (a few hundred bytes that
    expand to billions of nodes) would take minutes and all memory.
    """
    depth = 0
    # libyaml, when there, reads ahead in C and has a nesting limit of its own.
    for event in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
        if isinstance(event, yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in suite files", event.start_mark
            )
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_DEPTH} levels deep", event.start_mark
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _read_yaml(name: str, text: str) -> Source:
    yaml = _yaml()
    try:
        _check_yaml_events(yaml, text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        raise SuiteFileError(
            name, [Problem(f"not valid YAML: {exc.problem or exc}", (), line, column)]
        ) from None
    except yaml.YAMLError as exc:
        raise SuiteFileError(name, [Problem(f"not valid YAML: {exc}")]) from None
    positions: Positions = {}
    duplicates: List[Problem] = []
    if node is not None:
        _walk(node, (), positions, duplicates)
    if duplicates:
        raise SuiteFileError(name, duplicates)
    return Source(data, positions)


def _json_too_deep(text: str) -> Optional[Tuple[int, int]]:
    """The line and column where ``text`` first nests deeper than :data:`MAX_DEPTH`, or None
    (checked before ``json.loads``, which would hit the recursion limit)."""
    depth, line, column, in_string, escaped = 0, 1, 0, False, False
    for char in text:
        column += 1
        if char == "\n":
            line, column = line + 1, 0
        elif in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return line, column
        elif char in "]}":
            depth -= 1
    return None


def _read_json(name: str, text: str) -> Source:
    deep = _json_too_deep(text)
    if deep is not None:
        problem = Problem(f"not valid JSON: nested more than {MAX_DEPTH} levels deep", (), *deep)
        raise SuiteFileError(name, [problem])
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SuiteFileError(
            name, [Problem(f"not valid JSON: {exc.msg}", (), exc.lineno, exc.colno)]
        ) from None
    positions: Positions = {}
    try:  # JSON is (nearly) YAML: borrow its node tree for positions, best effort
        yaml = _yaml()
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            _walk(node, (), positions, [])
    except Exception:  # positions are a courtesy; the data above is authoritative
        positions = {}
    return Source(data, positions)


def _walk(node: Any, path: Path_, out: Positions, duplicates: List[Problem]) -> None:
    yaml = _yaml()
    out.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key, value in node.value:
            name = key.value
            where = (key.start_mark.line + 1, key.start_mark.column + 1)
            if name in seen:
                duplicates.append(Problem(f"duplicate key {name!r}", path, *where))
            seen.add(name)
            child = (*path, name)
            out[child] = where
            _walk(value, child, out, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), out, duplicates)


# --- the CSV shorthand ---------------------------------------------------------------------------

CSV_TYPES = (
    "equals", "contains", "icontains", "not_contains", "starts_with", "regex",
    "contains_any", "contains_all", "max_length", "tool_called", "tool_not_called",
    "first_text_ms", "turn_ms",
)  # fmt: skip
"""Prefixes the ``expected`` cells understand (``type:value``); no known prefix = ``equals``."""
_LIST_TYPES = ("contains_any", "contains_all")
_NUMBER_TYPES = ("max_length", "first_text_ms", "turn_ms")


def read_csv(name: str, text: str) -> Source:
    """Rows of ``input,expected`` (more ``expected*`` columns, ``id``, ``tags``, and any other
    column as a variable) → one single-turn conversation per row."""
    reader = csv.DictReader(io.StringIO(text))
    try:
        fields = [f.strip() for f in reader.fieldnames or []]
    except csv.Error as exc:
        raise _csv_error(name, reader, exc) from None
    if "input" not in fields:
        raise SuiteFileError(name, [Problem("a CSV suite needs an 'input' column", (), 1, 1)])
    conversations: List[Dict[str, Any]] = []
    positions: Positions = {(): (1, 1), ("conversations",): (1, 1)}
    problems: List[Problem] = []
    for index, raw in enumerate(_csv_rows(name, reader)):
        row = {(k or "").strip(): (v or "") for k, v in raw.items()}
        line = reader.line_num
        path = ("conversations", index)
        positions[path] = (line, 1)
        checks = []
        for column in fields:
            if column.startswith("expected") and row.get(column, "").strip():
                try:
                    checks.append(csv_check(row[column].strip()))
                except ValueError as exc:
                    problems.append(Problem(f"column {column!r}: {exc}", path, line, 1))
        conversation: Dict[str, Any] = {
            "id": row.get("id", "").strip() or f"row-{index + 1}",
            "steps": [{"user": row["input"], **({"expect": checks} if checks else {})}],
        }
        tags = [t.strip() for t in row.get("tags", "").split(";") if t.strip()]
        if tags:
            conversation["tags"] = tags
        variables = {
            k: v
            for k, v in row.items()
            if k not in ("id", "input", "tags") and k and not (k.startswith("expected"))
        }
        if variables:
            conversation["vars"] = variables
        conversations.append(conversation)
    if problems:
        raise SuiteFileError(name, problems)
    return Source({"suite": Path(name).stem, "conversations": conversations}, positions)


def _csv_rows(name: str, reader: "csv.DictReader[str]") -> Iterator[Dict[str, Any]]:
    """The rows of ``reader``; a row the csv module refuses (a field over its size limit, a
    stray quote) is a line-numbered :class:`SuiteFileError`."""
    try:
        yield from reader
    except csv.Error as exc:
        raise _csv_error(name, reader, exc) from None


def _csv_error(name: str, reader: "csv.DictReader[str]", exc: csv.Error) -> SuiteFileError:
    # The DictReader's own line_num is updated after a row succeeds; its reader's is current.
    line = reader.reader.line_num or 1
    return SuiteFileError(name, [Problem(f"not valid CSV: {exc}", (), line, 1)])


def csv_check(cell: str) -> Dict[str, Any]:
    """One ``expected`` cell: ``[!]type:value`` (``!`` negates), or plain text for ``equals``.

    The value after ``type:`` (each item of a ``|`` list) loses its surrounding spaces unless
    it is wrapped in quotes (see :func:`csv_value`); a cell without a prefix is kept as it is.
    """
    negate = cell.startswith("!")
    body = cell[1:] if negate else cell
    kind, sep, value = body.partition(":")
    parsed: Any = csv_value(value)
    if not sep or kind.strip() not in CSV_TYPES:
        kind, value = "equals", body
        parsed = body.strip()
    kind = kind.strip()
    if kind in _LIST_TYPES:
        parsed = [csv_value(v) for v in value.split("|") if v.strip()]
        if not parsed:
            raise ValueError(f"{kind} needs values separated by '|'")
    elif kind in _NUMBER_TYPES:
        try:
            parsed = float(value) if kind != "max_length" else int(value)
        except ValueError:
            raise ValueError(f"{kind} needs a number, got {value!r}") from None
    check: Dict[str, Any] = {kind: parsed}
    if negate:
        check["not"] = True
    return check


def csv_value(text: str) -> str:
    """``text`` without surrounding spaces; a value in matching single or double quotes is
    taken verbatim from inside them, so ``contains:' Paris '`` keeps its spaces."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text
