"""The support page, a JSON endpoint for a script on the page, and the webhook endpoint.

Views run on the server's request threads; each visitor's conversation comes from the shared
registry (``blackbox.registry()``), keyed by an id kept in the visitor's session.
"""

import json
import secrets
from typing import Any, List

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

import blackbox_sync as bb
from blackbox_sync.contrib.django import webhook_view

from . import blackbox


def _visitor(request: HttpRequest) -> str:
    if "visitor" not in request.session:
        request.session["visitor"] = secrets.token_urlsafe(16)
    return str(request.session["visitor"])


def _timeout() -> float:
    return float(blackbox.config().get("ASK_TIMEOUT", 30.0))


def _shown(visitor: str) -> List[bb.TextMessage]:
    """The visitor's conversation as the page shows it: final texts, fillers left out."""
    conversation = blackbox.registry().get(visitor)
    if conversation is None:
        return []
    rule = conversation.turn_rule
    return [m for m in conversation.transcript if not (m.from_assistant and rule.is_filler(m.text))]


def index(request: HttpRequest) -> HttpResponse:
    return redirect("support")


def support(request: HttpRequest) -> HttpResponse:
    """The page; its form POSTs the visitor's question here."""
    error = None
    if request.method == "POST":
        question = request.POST.get("question", "").strip()
        if question:
            try:
                blackbox.registry().ask(_visitor(request), question, timeout=_timeout())
            except bb.BlackBoxError as exc:  # shown on the page; the visitor can retry
                error = f"The assistant is not available right now ({exc})."
    context = {"transcript": _shown(_visitor(request)), "error": error}
    return render(request, "support/support.html", context)


@require_POST
def ask(request: HttpRequest) -> JsonResponse:
    """``{"question": ...}`` in, ``{"reply", "reason", "ended"}`` out."""
    try:
        body: Any = json.loads(request.body or b"{}")
    except ValueError:
        body = {}
    question = str(body.get("question", "") if isinstance(body, dict) else "").strip()
    if not question:
        return JsonResponse({"error": "question is required"}, status=400)
    try:
        reply = blackbox.registry().ask(_visitor(request), question, timeout=_timeout())
    except bb.AskTimeout as exc:
        partial = exc.reply.text if exc.reply is not None else ""
        return JsonResponse(
            {"error": "the agent did not finish in time", "partial": partial}, status=504
        )
    except bb.BlackBoxError as exc:
        return JsonResponse({"error": str(exc)}, status=502)
    return JsonResponse({"reply": reply.text, "reason": str(reply.reason), "ended": reply.ended})


@require_POST
def end(request: HttpRequest) -> HttpResponse:
    """End the visitor's conversation (the next question starts a new one)."""
    result = blackbox.registry().end(_visitor(request))
    if request.content_type == "application/json":
        return JsonResponse({"ended": True, "status": result.status if result else None})
    return redirect("support")


@csrf_exempt  # the service sends no CSRF token; the secret header guards this view instead
def webhook(request: HttpRequest) -> Any:
    """``POST /blackbox/webhook``: the agent's webhook tools."""
    # Built per request so a changed WEBHOOK_SECRET applies at once; building it is cheap.
    return webhook_view(blackbox.webhook_handler())(request)
