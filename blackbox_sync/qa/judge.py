"""The judge interface for graded checks (``judge:`` / ``llm_rubric:``). No model is bundled.

A judge is any callable ``judge(request: JudgeRequest) -> Verdict | float | bool``: wrap your
LLM client in one (temperature 0 recommended). It sees only the criteria, the transcript and,
for a turn check, the turn's reply. Verdicts are cached by (judge, criteria, transcript, reply),
so repeats with the same transcript, and re-runs with a cache file, never ask twice.

A cache file names the judge by its ``module:qualname`` only, so it outlives the process. The
in-memory cache (no file) also tells judges apart by their code, or by object identity, so a
judge redefined in a notebook is asked again rather than served its predecessor's verdicts.
"""

import hashlib
import json
import threading
import types
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Union

import attrs


@attrs.frozen
class JudgeRequest:
    """What a judge grades."""

    criteria: str
    transcript: Tuple[Tuple[str, str], ...]
    """``(role, text)`` pairs: ``user`` and ``assistant`` final texts, in order."""
    reply: Optional[str] = None
    """The turn's reply when the check belongs to a turn; ``None`` for the whole conversation."""


@attrs.frozen
class Verdict:
    """A judge's answer: a score from 0 to 1 and its reason."""

    score: float
    reason: str = ""


Judge = Callable[[JudgeRequest], Union[Verdict, float, bool]]


def as_verdict(answer: Any) -> Verdict:
    """Accept a :class:`Verdict`, a number (the score) or a bool (1 or 0)."""
    if isinstance(answer, Verdict):
        return answer
    if isinstance(answer, bool):
        return Verdict(1.0 if answer else 0.0)
    if isinstance(answer, (int, float)):
        return Verdict(float(answer))
    raise TypeError(f"a judge returns a Verdict, a number or a bool, not {type(answer).__name__}")


class JudgeCache:
    """Verdicts by (judge, criteria, transcript, reply); thread-safe; optionally kept in a JSONL
    file so a later run (or a re-grade of stored transcripts) reuses them."""

    def __init__(self, path: Optional[Union[str, Path]] = None) -> None:
        self._lock = threading.Lock()
        self._verdicts: Dict[str, Verdict] = {}
        self._pinned: Dict[int, Any] = {}
        """Objects whose ``id()`` is part of a key, kept alive so the id is never reused."""
        self._path = Path(path) if path is not None else None
        if self._path is not None and self._path.exists():
            for line in self._path.read_text(encoding="utf-8").splitlines():
                try:
                    item = json.loads(line)
                    self._verdicts[item["key"]] = Verdict(float(item["score"]), item["reason"])
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line after a crash

    @staticmethod
    def key(judge_name: str, request: JudgeRequest) -> str:
        """The cache key of a request."""
        body = json.dumps(
            [judge_name, request.criteria, request.transcript, request.reply], ensure_ascii=False
        )
        return hashlib.sha256(body.encode("utf-8")).hexdigest()

    def __len__(self) -> int:
        with self._lock:
            return len(self._verdicts)

    def grade(self, judge_name: str, judge: Judge, request: JudgeRequest) -> Tuple[Verdict, bool]:
        """The verdict, and whether it came from the cache."""
        if self._path is None:
            judge_name = f"{judge_name}@{self._identity(judge)}"
        key = self.key(judge_name, request)
        with self._lock:
            found = self._verdicts.get(key)
        if found is not None:
            return found, True
        verdict = as_verdict(judge(request))
        with self._lock:
            self._verdicts[key] = verdict
            if self._path is not None:
                with self._path.open("a", encoding="utf-8") as out:
                    line = {"key": key, "score": verdict.score, "reason": verdict.reason}
                    out.write(json.dumps(line, ensure_ascii=False) + "\n")
        return verdict, False

    def _identity(self, judge: Any) -> str:
        """What tells two judges of the same name apart: a function by its code, defaults and
        closure (a copy unpickled on a worker is the same judge), a bound method by that and
        its object, any other callable by its identity."""
        function = getattr(judge, "__func__", judge)
        code = getattr(function, "__code__", None)
        if code is None:
            return f"id:{self._pin(judge)}"
        try:
            cells = [c.cell_contents for c in getattr(function, "__closure__", None) or ()]
            detail = repr((function.__defaults__, function.__kwdefaults__, cells))
            text = _code_text(code) + detail
            digest = hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()
        except Exception:  # an empty cell, a repr that raises: fall back to identity
            digest = f"id:{self._pin(function)}"
        owner = getattr(judge, "__self__", None)
        return digest if owner is None else f"{digest}/id:{self._pin(owner)}"

    def _pin(self, obj: Any) -> int:
        with self._lock:
            self._pinned.setdefault(id(obj), obj)
        return id(obj)


def _code_text(code: types.CodeType) -> str:
    """A code object as text, nested code included. Not ``marshal.dumps``: its output depends
    on reference counts, so the same function would not always give the same text."""
    consts = [_code_text(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts]
    parts = (code.co_code, consts, code.co_names, code.co_varnames, code.co_filename)
    return repr(parts)


_caches: Dict[Optional[str], JudgeCache] = {}
_caches_lock = threading.Lock()


def cache_for(path: Optional[str] = None) -> JudgeCache:
    """This process's cache for ``path`` (``None``: in memory only), made on first use.

    Runs hand workers the path, never a cache object, so a worker in another process (dask)
    opens its own.
    """
    with _caches_lock:
        cache = _caches.get(path)
        if cache is None:
            cache = _caches[path] = JudgeCache(path)
        return cache
