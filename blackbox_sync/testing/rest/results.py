"""Finished calls in the emulator: scheduled calls' lifecycle, call results, search, webhooks.

A conversation ends one of three ways — a scheduled call completes, a WebSocket conversation ends,
a REST chat ends — and each becomes one call result and, when the agent has a result webhook,
one POST to it, exactly as :func:`finish` writes them.
"""

import asyncio
import json
import math
from datetime import datetime
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import aiohttp

from blackbox_sync.protocol.codec import format_timestamp, parse_timestamp, utcnow
from blackbox_sync.testing.agents.scripted import AgentContext, End, Say
from blackbox_sync.testing.rest.state import ORG_ID, RestStore, WebhookDelivery, now

QUEUED = "Queued"
RUNNING = "Running"
COMPLETED = "Completed"
FAILED = "Failed"
CANCELED = "Canceled"
KNOWN_STATUSES = ("Unknown", "Created", "Pending", QUEUED, RUNNING, COMPLETED, FAILED, CANCELED)
CANCELABLE = ("Created", "Pending", QUEUED)

_WEBHOOK_TYPES = {
    COMPLETED: "CompletedWebHookPayload",
    FAILED: "FailedWebHookPayload",
    CANCELED: "CallDeadLineWebHookPayload",
}


# --- webhooks ------------------------------------------------------------------------------------


def webhook_target(
    state: RestStore, agent_id: Optional[str]
) -> Optional[Tuple[str, Dict[str, str]]]:
    """Where results of ``agent_id`` go: ``state.webhook_url``, else the agent's result webhook."""
    agent = state.agents.get(agent_id or "") or {}
    hook = (agent.get("config") or {}).get("resultWebhook") or {}
    url = state.webhook_url or hook.get("url")
    if not url:
        return None
    headers = hook.get("headers")
    pairs = headers.items() if isinstance(headers, dict) else ()
    return url, {str(k): str(v) for k, v in pairs}


async def deliver(
    state: RestStore, url: str, payload: Dict[str, Any], headers: Optional[Dict[str, str]] = None
) -> WebhookDelivery:
    """POST ``payload`` to ``url``; retry on 5xx, timeouts and refused connections, as live."""
    record = WebhookDelivery(url, payload)
    with state.lock:
        state.webhooks.append(record)
    timeout = aiohttp.ClientTimeout(total=state.webhook_timeout)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for attempt in range(state.webhook_retries + 1):
                status, body = await _post(session, url, payload, headers or {})
                with state.lock:
                    record.statuses.append(status)
                    record.response = body
                if isinstance(status, int) and status < 500:
                    break  # 2xx delivered; 4xx is the receiver's final word, never retried
                if attempt < state.webhook_retries:
                    await asyncio.sleep(state.webhook_backoff * 2**attempt)
    finally:
        with state.lock:
            record.done = True
            state.touch()
    return record


async def post_once(
    state: RestStore, url: str, payload: Dict[str, Any], headers: Dict[str, str]
) -> Tuple[Union[int, str], Any]:
    """One POST, no retry (``/webhooks/test``): the status (or error name) and the answer."""
    timeout = aiohttp.ClientTimeout(total=state.webhook_timeout)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        return await _post(session, url, payload, headers)


async def _post(
    session: aiohttp.ClientSession, url: str, payload: Dict[str, Any], headers: Dict[str, str]
) -> Tuple[Union[int, str], Any]:
    try:
        async with session.post(url, json=payload, headers=headers) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text) if text else None
            except ValueError:
                return response.status, text
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        return type(exc).__name__, None


# --- results -------------------------------------------------------------------------------------


def finish(
    state: RestStore,
    *,
    call_id: str,
    agent_id: Optional[str],
    call_type: str,
    status: str,
    created: str,
    completed: Optional[str] = None,
    endpoint: Optional[str] = None,
    additional_data: Optional[Dict[str, Any]] = None,
    transcript: Iterable[Tuple[str, str]] = (),
    finish_reason: Optional[str] = None,
    error_message: Optional[str] = None,
    result: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Store the call result of a finished conversation and send its webhook (lock held)."""
    completed = completed or now()
    entries = [{"speaker": speaker, "text": text} for speaker, text in transcript]
    outcome = (
        result
        if result is not None
        else {
            "finishReason": finish_reason,
            "status": status,
            "postCallAnalysis": {},
        }
    )
    record = {
        "callId": call_id,
        "agentId": agent_id,
        "orgId": ORG_ID,
        "callAdditionalData": dict(additional_data or {}),
        "callStatus": status,
        "callType": call_type,
        "createdTime": created,
        "completedTime": completed,
        "durationSeconds": _seconds_between(created, completed),
        "endpoint": endpoint,
        "sip": None,
        "result": outcome,
        "transcription": entries,
        "serverJobId": call_id,
        "errorMessage": error_message,
        "inspectorUrl": f"{state.service.base_url}/inspector/{call_id}",
        "recordingUrl": None,
        "score": None,
        "highlights": {},
    }
    state.results.append(record)
    state.touch()
    send_result_webhook(state, record)
    return record


def send_result_webhook(state: RestStore, record: Dict[str, Any]) -> None:
    """Send the Completed/Failed/CallDeadLine webhook for a call result, if one is configured."""
    target = webhook_target(state, record.get("agentId"))
    kind = _WEBHOOK_TYPES.get(str(record.get("callStatus")))
    if target is None or kind is None:
        return
    agent = state.agents.get(record.get("agentId") or "") or {}
    payload = {
        "type": kind,
        "status": record["callStatus"],
        "callId": record["callId"],
        "agentId": record["agentId"],
        "orgId": ORG_ID,
        "callAdditionalData": record["callAdditionalData"],
        "agentAdditionalData": agent.get("additionalData") or {},
        "serverJobId": record["serverJobId"],
        "endpoint": record["endpoint"],
        "callType": record["callType"],
        "createdTime": record["createdTime"],
        "completedTime": record["completedTime"],
    }
    if kind == "CompletedWebHookPayload":
        payload.update(
            durationSeconds=record["durationSeconds"],
            transcription=record["transcription"],
            result=record["result"],
            inspectorUrl=record["inspectorUrl"],
            recordingUrl=record["recordingUrl"],
        )
    elif kind == "FailedWebHookPayload":
        payload["errorMessage"] = record["errorMessage"]
    url, headers = target
    state.spawn(deliver(state, url, payload, headers))


def record_conversation(state: RestStore, conversation: Any) -> None:
    """Turn a finished WebSocket conversation (a ``ConversationRecord``) into a call result."""
    with state.lock:
        if conversation.record_id in state.recorded_conversations:
            return
        state.recorded_conversations.add(conversation.record_id)
        ended = conversation.ended_at or utcnow()
        finish(
            state,
            call_id=conversation.record_id,
            agent_id=conversation.agent_id,
            call_type=conversation.call_type,
            status=FAILED if conversation.status == FAILED else COMPLETED,
            created=format_timestamp(conversation.started_at),
            completed=format_timestamp(ended),
            endpoint=conversation.endpoint,
            additional_data=conversation.additional_data,
            transcript=conversation.transcript,
            finish_reason=conversation.ended_by,
            error_message=conversation.error_message,
        )


def sync_conversations(state: RestStore) -> None:
    """Record every ended WebSocket conversation not recorded yet (before a search reads)."""
    for conversation in state.service.conversations():
        if conversation.ended_at is not None and conversation.status != RUNNING:
            record_conversation(state, conversation)


def _seconds_between(start: str, end: str) -> Optional[float]:
    a, b = parse_timestamp(start), parse_timestamp(end)
    return None if a is None or b is None else round(max(0.0, (b - a).total_seconds()), 3)


# --- scheduled calls -----------------------------------------------------------------------------


def new_call(state: RestStore, agent_id: str, body: Dict[str, Any]) -> Dict[str, Any]:
    """Queue a call (lock held) and start moving it through its statuses."""
    call_id = state.new_id("call")
    created = now()
    call = {
        "callId": call_id,
        "orgId": ORG_ID,
        "agentId": agent_id,
        "endpoint": body["endpoint"],
        "createdTime": created,
        "status": QUEUED,
        "nextScheduleTime": created,
        "additionalData": body.get("additionalData") or {},
        "priority": body.get("priority", 1),
        "callDeadline": body.get("callDeadline"),
        "timezone": body.get("timezone") or "UTC",
        "overrideOutboundConfig": body.get("overrideOutboundConfig"),
        "recordId": None,
        "completedTime": None,
        "inspectorUrl": None,
    }
    state.calls[call_id] = call
    if state.call_step_seconds is not None:
        state.spawn(_progress(state, call_id, state.call_step_seconds))
    return call


async def _progress(state: RestStore, call_id: str, step: float) -> None:
    # The timed walk takes the same steps a test takes by hand with advance_call(); it leaves
    # alone a call that a test (or a cancel) has moved in the meantime.
    await asyncio.sleep(step)
    with state.lock:
        call = state.calls.get(call_id)
        if call is None or call["status"] != QUEUED or advance_call(state, call_id) != RUNNING:
            return
    await asyncio.sleep(step)
    with state.lock:
        call = state.calls.get(call_id)
        if call is not None and call["status"] == RUNNING:
            advance_call(state, call_id)


def advance_call(state: RestStore, call_id: str) -> str:
    """Move a scheduled call one status on and return the new status. Any thread.

    Queued (or Created, Pending) → Running, or → Canceled with the deadline webhook when its
    ``callDeadline`` has passed; Running → Completed, with its call result and result webhook.
    A finished call stays as it is.
    """
    with state.lock:
        call = state.calls[call_id]
        if call["status"] in CANCELABLE:
            deadline = parse_timestamp(call.get("callDeadline"))
            if deadline is not None and deadline <= utcnow():
                cancel_call(state, call_id)
            else:
                call["status"] = RUNNING
                call["recordId"] = call_id
                state.touch()
        elif call["status"] == RUNNING:
            complete_call(state, call_id)
        return str(call["status"])


def complete_call(
    state: RestStore,
    call_id: str,
    *,
    status: str = COMPLETED,
    transcript: Optional[Sequence[Tuple[str, str]]] = None,
    error_message: Optional[str] = None,
    result: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """End a scheduled call now with ``status``; returns its call result. Any thread."""
    with state.lock:
        call = state.calls[call_id]
        call["status"] = status
        call["recordId"] = call_id
        call["completedTime"] = now()
        call["inspectorUrl"] = f"{state.service.base_url}/inspector/{call_id}"
        lines = transcript if transcript is not None else _greeting(state, call)
        return finish(
            state,
            call_id=call_id,
            agent_id=call["agentId"],
            call_type="onPhone",
            status=status,
            created=call["createdTime"],
            completed=call["completedTime"],
            endpoint=call["endpoint"],
            additional_data=call["additionalData"],
            transcript=lines,
            finish_reason="agent_hangup" if status == COMPLETED else None,
            error_message=error_message,
            result=result,
        )


def cancel_call(state: RestStore, call_id: str) -> Dict[str, Any]:
    """Cancel a queued call (lock held): status Canceled and the deadline webhook, as live."""
    call = state.calls[call_id]
    call["status"] = CANCELED
    call["completedTime"] = now()
    state.touch()
    target = webhook_target(state, call["agentId"])
    if target is not None:
        payload = {
            "type": _WEBHOOK_TYPES[CANCELED],
            "status": CANCELED,
            "callId": call_id,
            "agentId": call["agentId"],
            "orgId": ORG_ID,
            "callAdditionalData": call["additionalData"],
            "agentAdditionalData": (state.agents.get(call["agentId"]) or {}).get("additionalData")
            or {},
            "endpoint": call["endpoint"],
        }
        state.spawn(deliver(state, target[0], payload, target[1]))
    return call


def _greeting(state: RestStore, call: Dict[str, Any]) -> List[Tuple[str, str]]:
    # A phone call cannot be emulated, but its transcript can start like the agent would.
    texts = scripted_texts(
        state, call["agentId"], call_id=call["callId"], data=call["additionalData"]
    )
    return [("assistant", t) for t in texts] or [("assistant", "Hello from the emulated call.")]


# --- search --------------------------------------------------------------------------------------


def search(state: RestStore, criteria: Dict[str, Any]) -> Dict[str, Any]:
    """``POST /callresults/search`` over the stored results (raises ``ValueError`` on bad input)."""
    started = utcnow()
    page = criteria.get("page", 0)
    size = criteria.get("size", 50)
    if not isinstance(page, int) or page < 0:
        raise ValueError("page must be an integer >= 0")
    if not isinstance(size, int) or not 1 <= size <= 1000:
        raise ValueError("size must be an integer from 1 to 1000")
    sync_conversations(state)
    with state.lock:
        rows = [r for r in state.results if _matches(r, criteria)]
    field = criteria.get("sortField") or "createdTime"
    descending = (criteria.get("sortDirection") or "Descending").lower().startswith("desc")
    rows.sort(key=lambda r: _sort_key(r.get(field)), reverse=descending)
    total = len(rows)
    answer: Dict[str, Any] = {
        "results": rows[page * size : (page + 1) * size],
        "totalCount": total,
        "page": page,
        "size": size,
        "totalPages": math.ceil(total / size),
        "executionTimeMs": round((utcnow() - started).total_seconds() * 1000, 3),
    }
    if criteria.get("includeAggregations"):
        answer["aggregations"] = _aggregations(rows)
    return answer


def _matches(row: Dict[str, Any], c: Dict[str, Any]) -> bool:
    checks = (
        ("agentIds", "agentId"),
        ("callStatuses", "callStatus"),
        ("callIds", "callId"),
    )
    for key, field in checks:
        wanted = c.get(key)
        if wanted and row.get(field) not in wanted:
            return False
    if c.get("endpoint") and row.get("endpoint") != c["endpoint"]:
        return False
    created = parse_timestamp(row.get("createdTime"))
    start, end = parse_timestamp(c.get("fromDate")), parse_timestamp(c.get("toDate"))
    if created is not None and ((start and created < start) or (end and created > end)):
        return False
    for key, value in (c.get("additionalDataFilters") or {}).items():
        name = key.split(".", 1)[1] if key.startswith("callAdditionalData.") else key
        if str((row.get("callAdditionalData") or {}).get(name)) != str(value):
            return False
    text = c.get("searchText")
    if text:
        haystack = " ".join(
            [str(row.get("callId")), str(row.get("endpoint") or "")]
            + [str(e.get("text", "")) for e in row.get("transcription") or []]
        )
        if str(text).lower() not in haystack.lower():
            return False
    return True


def _sort_key(value: Any) -> Tuple[int, Any]:
    # None sorts first ascending; timestamps compare as times, everything else as text.
    if value is None:
        return (0, "")
    if isinstance(value, (int, float)):
        return (1, value)
    moment = parse_timestamp(value)
    return (2, moment) if isinstance(moment, datetime) else (3, str(value))


def _aggregations(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    def count(field: str) -> Dict[str, int]:
        out: Dict[str, int] = {}
        for row in rows:
            key = str(row.get(field))
            out[key] = out.get(key, 0) + 1
        return out

    days: Dict[str, int] = {}
    for row in rows:
        day = str(row.get("createdTime") or "")[:10]
        days[day] = days.get(day, 0) + 1
    return {
        "statusCounts": count("callStatus"),
        "agentCounts": count("agentId"),
        "endpointCounts": count("endpoint"),
        "dateHistogram": [{"date": f"{d}T00:00:00Z", "count": n} for d, n in sorted(days.items())],
        "customAggregations": {},
    }


def scripted_texts(
    state: RestStore, agent_id: Optional[str], *, call_id: str, data: Dict[str, Any]
) -> List[str]:
    """What the agent says first (its greeting), run synchronously; tools get no answer."""
    agent = state.service.agent_for(agent_id)
    context = AgentContext(
        record_id=call_id, agent_id=agent_id, call_type="onPhone", additional_data=data
    )
    texts: List[str] = []
    turn = agent.greet(context)
    try:
        step = next(turn)
        while True:
            if isinstance(step, Say) and not step.partial:
                texts.append(step.text)
            if isinstance(step, End):
                break
            step = turn.send(None)
    except StopIteration:
        pass
    return texts
