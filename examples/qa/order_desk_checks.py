"""A custom check and a toy judge for the example suite.

A real judge wraps an LLM (temperature 0) and returns ``Verdict(score, reason)``; this one scores
by keywords so the example runs offline and deterministically.
"""

import re

from blackbox_sync import qa


def is_polite(observed: qa.Observed, words: str = "thanks,please,glad,happy") -> qa.Outcome:
    """``python:`` check: the reply thanks the user or says please."""
    found = [w for w in words.split(",") if w in observed.text.lower()]
    return qa.Outcome(bool(found), f"polite words: {found or 'none'}")


def keyword_judge(request: qa.JudgeRequest) -> qa.Verdict:
    """Score = share of the criteria's quoted words found in the reply (or the transcript)."""
    text = (request.reply or " ".join(t for _, t in request.transcript)).lower()
    words = [w.lower() for w in re.findall(r"'([^']+)'", request.criteria)]
    if not words:
        return qa.Verdict(0.0, "criteria name no 'quoted' words")
    hits = [w for w in words if w in text]
    return qa.Verdict(len(hits) / len(words), f"found {hits} of {words}")
