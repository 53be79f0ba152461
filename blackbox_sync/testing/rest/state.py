"""The emulator's REST state: in-memory objects, injected faults, a request journal, controls.

One :class:`RestStore` (as :class:`~.control.RestState`) lives on the emulator as
``emulator.rest``, on top of the emulator's :class:`~blackbox_sync.testing.service.ServiceState`
(the tokens, agents and conversations it shares with the WebSocket side). Objects are stored in
their wire form (camelCase dicts, snake_case for chats), so what a test seeds is exactly what
the client reads. Handlers run on the emulator's loop thread, tests call the control methods
from theirs: every access holds :attr:`RestStore.lock`, and waits use its condition, never sleeps.
"""

import asyncio
import itertools
import logging
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Coroutine, Dict, List, Optional, Set, Union

import attrs

from blackbox_sync.protocol.codec import format_timestamp, utcnow
from blackbox_sync.redact import redact_url
from blackbox_sync.testing.service import ServiceState

log = logging.getLogger("blackbox_sync.testing.rest")

ORG_ID = "org-emulator"


def now() -> str:
    """The current time as the wire writes it."""
    return format_timestamp(utcnow())


@attrs.define
class RestFault:
    """An injected answer: the next matching requests get ``status`` (a ProblemDetails body).

    ``path`` is a prefix of the path under ``/api/v1`` (``"/agents"``), ``method`` an HTTP method;
    ``None`` matches any. ``times`` ``None`` means until :meth:`RestStore.clear_faults`.
    ``retry_after`` is sent as the ``Retry-After`` header (fractions are allowed here so tests
    stay fast; the live service sends whole seconds). ``delay`` waits before answering; with
    ``status=None`` the request then proceeds normally (a slow service). ``processed=True``
    lets the request take effect first and only then answers ``status``: a gateway that lost
    the real answer, after which a retry meets the consequences (a 404 or 409 for a DELETE).
    """

    status: Optional[int]
    times: Optional[int] = 1
    method: Optional[str] = None
    path: Optional[str] = None
    retry_after: Optional[str] = None
    delay: float = 0.0
    title: Optional[str] = None
    detail: Optional[str] = None
    processed: bool = False
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        """True when this fault applies to ``method path`` and has uses left."""
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path is None or path.startswith(self.path)


@attrs.frozen
class RestRequest:
    """One REST request the emulator answered (credentials in the query are masked)."""

    method: str
    path: str
    """The path under ``/api/v1``, with the query string (redacted)."""
    status: int
    body: Any = attrs.field(repr=False)
    at: float = attrs.field(factory=time.monotonic, repr=False)


@attrs.define
class WebhookDelivery:
    """A webhook the emulator POSTed (or tried to): one record per delivery, with each attempt."""

    url: str
    payload: Dict[str, Any] = attrs.field(repr=False)
    statuses: List[Union[int, str]] = attrs.field(factory=list)
    """The HTTP status of each attempt, or the error's name when there was no answer."""
    response: Any = None
    done: bool = False

    @property
    def type(self) -> str:
        """The payload's ``type``."""
        return str(self.payload.get("type", ""))

    @property
    def delivered(self) -> bool:
        """True when an attempt got a 2xx answer."""
        return any(isinstance(s, int) and 200 <= s < 300 for s in self.statuses)


class RestStore:
    """Everything the REST emulator knows; see the module docstring for the threading rule.

    The handlers work on it; :class:`~.control.RestState` adds the calls' test controls.

    Settings tests may change: ``call_step_seconds`` (seconds a scheduled call spends queued and
    then running; ``None`` = calls move only through :meth:`advance_call` and
    :meth:`complete_call`), ``webhook_url``
    (overrides every agent's ``config.resultWebhook.url``), ``webhook_retries`` and
    ``webhook_backoff`` (5xx/timeouts are retried, so deliveries can repeat, as live),
    ``mcp_servers`` (``{serverUrl: [tool, ...]}`` that ``/mcp/verify`` reports as reachable),
    ``concurrency_limit`` (what ``/misc/concurrency`` reports).
    """

    def __init__(self, service: ServiceState) -> None:
        self.service = service
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._tasks: Set[Future[Any]] = set()
        self._ids = itertools.count(1)
        self.agents: Dict[str, Dict[str, Any]] = {}
        self.integrations: Dict[str, Dict[str, Any]] = {}
        self.tokens: Dict[str, Dict[str, Any]] = {}
        """``tokenId`` → token record (with ``integrationId`` and the secret ``token``)."""
        self.calls: Dict[str, Dict[str, Any]] = {}
        self.results: List[Dict[str, Any]] = []
        self.chats: Dict[str, Any] = {}
        self.text_chats: Dict[str, Any] = {}
        self.faults: List[RestFault] = []
        self.requests: List[RestRequest] = []
        self.webhooks: List[WebhookDelivery] = []
        self.recorded_conversations: Set[str] = set()
        self.settings_defaults()

    def settings_defaults(self) -> None:
        """Put the tunable settings back to their defaults."""
        self.call_step_seconds: Optional[float] = 0.5
        self.webhook_url: Optional[str] = None
        self.webhook_retries = 2
        self.webhook_backoff = 0.05
        self.webhook_timeout = 5.0
        self.mcp_servers: Dict[str, List[Dict[str, Any]]] = {}
        self.concurrency_limit = 10

    def __repr__(self) -> str:
        return (
            f"<RestState agents={len(self.agents)} integrations={len(self.integrations)} "
            f"calls={len(self.calls)} results={len(self.results)} faults={len(self.faults)}>"
        )

    # --- control API for tests -------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every object, fault, journal entry and setting; cancel background work."""
        with self.lock:
            tasks, self._tasks = self._tasks, set()
            for task in tasks:
                task.cancel()
            self.agents.clear()
            self.integrations.clear()
            self.tokens.clear()
            self.calls.clear()
            self.results.clear()
            self.chats.clear()
            self.text_chats.clear()
            self.faults.clear()
            self.requests.clear()
            self.webhooks.clear()
            self.recorded_conversations.clear()
            self._ids = itertools.count(1)
            self.settings_defaults()
            self.changed.notify_all()

    def fail(
        self,
        status: Optional[int],
        *,
        times: Optional[int] = 1,
        method: Optional[str] = None,
        path: Optional[str] = None,
        retry_after: Union[float, str, None] = None,
        delay: float = 0.0,
        title: Optional[str] = None,
        detail: Optional[str] = None,
        processed: bool = False,
    ) -> RestFault:
        """Make the next ``times`` matching requests answer ``status`` (see :class:`RestFault`)."""
        fault = RestFault(
            status,
            times=times,
            method=method,
            path=path,
            retry_after=None if retry_after is None else str(retry_after),
            delay=delay,
            title=title,
            detail=detail,
            processed=processed,
        )
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Disarm every injected fault."""
        with self.lock:
            self.faults.clear()

    def requests_to(self, path: str, method: Optional[str] = None) -> List[RestRequest]:
        """Journal entries whose path starts with ``path`` (and whose method is ``method``)."""
        with self.lock:
            return [
                r
                for r in self.requests
                if r.path.startswith(path) and (method is None or r.method == method.upper())
            ]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Block until ``predicate()`` (checked under the lock) is true; False on timeout."""
        with self.changed:
            return self.changed.wait_for(predicate, timeout)

    def wait_webhooks(self, count: int = 1, timeout: float = 5.0) -> List[WebhookDelivery]:
        """Wait until ``count`` webhook deliveries are finished; returns all deliveries so far."""
        if not self.wait_for(lambda: sum(d.done for d in self.webhooks) >= count, timeout):
            raise TimeoutError(f"fewer than {count} webhook deliveries finished in {timeout} s")
        with self.lock:
            return list(self.webhooks)

    # --- helpers for the handlers ----------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        """A short id, unique until the next reset (``agent-1``, ``call-7``)."""
        return f"{prefix}-{next(self._ids)}"

    def take_fault(self, method: str, path: str) -> Optional[RestFault]:
        """The first armed fault for ``method path``, counted as used."""
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.hits += 1
                    return fault
        return None

    def journal(self, method: str, path_qs: str, status: int, body: Any) -> None:
        """Record an answered request."""
        with self.lock:
            self.requests.append(RestRequest(method, redact_url(path_qs), status, body))
            self.changed.notify_all()

    def touch(self) -> None:
        """Wake waiters after a change (call with the lock held)."""
        self.changed.notify_all()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` on the emulator's loop, from any thread; reset cancels it."""
        loop = self.service.running_loop()
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        with self.lock:
            self._tasks.add(future)
        future.add_done_callback(self._finished)

    def _finished(self, future: "Future[Any]") -> None:
        with self.lock:
            self._tasks.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.error("emulator REST background task failed", exc_info=future.exception())

    def shutdown(self) -> None:
        """Cancel background work (the emulator is stopping)."""
        with self.lock:
            tasks, self._tasks = self._tasks, set()
        for task in tasks:
            task.cancel()
