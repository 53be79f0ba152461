"""Client-side tools: run each ``websocketToolRequest`` in a thread pool and answer it once.

Every request gets exactly one answer, so the agent never waits forever: the handler's result, or
``{"error": "..."}`` when there is no handler, the arguments do not fit it, it raises, it returns
something that is not JSON (or text that UTF-8 cannot carry), or it runs past its timeout (a late
result is then dropped).

The handlers run on daemon threads of a small pool of our own: a handler that never returns must
not keep the interpreter alive after the conversation closed (``concurrent.futures`` joins its
workers at exit), so :meth:`ToolRunner.shutdown` leaves it behind and says which tool it was.
"""

import inspect
import json
import logging
import queue
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from blackbox_sync.errors import BlackBoxError, ToolError, UsageError
from blackbox_sync.protocol.codec import unstructure
from blackbox_sync.protocol.messages import ToolRequest, ToolResponse
from blackbox_sync.protocol.state import REMEMBERED_TOOL_IDS, RecentIds
from blackbox_sync.redact import redact_text

log = logging.getLogger("blackbox_sync.tools")

ToolHandler = Callable[..., Any]

# How much of a tool name or request id an error message quotes.
_QUOTED_CHARS = 80
# Which runner's handler the current pool thread is running, if any.
_running = threading.local()


class ToolArgumentsError(BlackBoxError, ValueError):
    """The arguments of a tool request do not fit the handler's signature."""


def handler_signature(handler: ToolHandler) -> Optional[inspect.Signature]:
    """The signature arguments are checked against, or ``None`` for a callable that has none
    Python can read (many builtins): it is then called with the arguments as they came."""
    try:
        return inspect.signature(handler)
    except (TypeError, ValueError):
        return None


def bind_arguments(
    handler: ToolHandler, args: Any, signature: Optional[inspect.Signature] = None
) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
    """Match a request's ``args`` object to the handler's keyword parameters: the positional and
    keyword arguments to call it with."""
    if not isinstance(args, dict):
        raise ToolArgumentsError(f"arguments must be a JSON object, got {type(args).__name__}")
    if signature is None:
        signature = handler_signature(handler)
    if signature is None:
        return (), dict(args)
    try:
        bound = signature.bind(**args)
    except TypeError as exc:
        raise ToolArgumentsError(f"arguments do not fit the tool: {exc}") from None
    return bound.args, bound.kwargs


def json_result(value: Any) -> Any:
    """``value`` as plain JSON data (attrs objects are unstructured); raises ``ValueError`` or
    ``TypeError`` if it is not JSON, or holds text UTF-8 cannot encode (a lone surrogate)."""
    plain = unstructure(value)
    json.dumps(plain, allow_nan=False, ensure_ascii=False).encode("utf-8")
    return plain


_Job = Tuple[ToolRequest, ToolHandler, Tuple[Any, ...], Dict[str, Any]]


class _Pool:
    """Up to ``workers`` daemon threads taking jobs from one queue, started as jobs arrive.

    :meth:`shutdown` waits for running jobs up to a timeout and then leaves them: a daemon thread
    does not hold the interpreter at exit, unlike ``concurrent.futures``' workers.
    """

    def __init__(self, workers: int, run: Callable[[_Job], None]) -> None:
        self._limit = workers
        self._run = run
        self._jobs: queue.SimpleQueue[Optional[_Job]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._threads: List[threading.Thread] = []
        self.running: Dict[int, ToolRequest] = {}
        """The request each busy worker runs, by thread ident."""

    def submit(self, job: _Job) -> None:
        with self._lock:
            start = self._idle == 0 and len(self._threads) < self._limit
            if start:
                thread = threading.Thread(
                    target=self._work,
                    name=f"blackbox-tool-{len(self._threads)}",
                    daemon=True,
                )
                self._threads.append(thread)
            else:
                self._idle -= 1 if self._idle else 0
        self._jobs.put(job)
        if start:
            thread.start()

    def stop(self) -> None:
        """Drop queued jobs and tell every worker to end once its job is done."""
        dropped = 0
        while True:
            try:
                if self._jobs.get_nowait() is not None:
                    dropped += 1
            except queue.Empty:
                break
        if dropped:
            log.debug("%d queued tool requests dropped at shutdown", dropped)
        with self._lock:
            threads = len(self._threads)
        for _ in range(threads):
            self._jobs.put(None)

    def join(self, timeout: float) -> List[ToolRequest]:
        """Wait up to ``timeout`` for the workers (after :meth:`stop`); returns the requests
        still running then."""
        with self._lock:
            threads = list(self._threads)
        deadline = time.monotonic() + timeout
        current = threading.current_thread()
        for thread in threads:
            if thread is not current:
                thread.join(max(0.0, deadline - time.monotonic()))
        return [
            request
            for thread in threads
            if thread.is_alive() and thread is not current
            for request in [self.running.get(thread.ident or 0)]
            if request is not None
        ]

    def _work(self) -> None:
        ident = threading.get_ident()
        while True:
            job = self._jobs.get()
            if job is None:
                return
            self.running[ident] = job[0]
            try:
                self._run(job)
            finally:
                del self.running[ident]
                with self._lock:
                    self._idle += 1


class ToolRunner:
    """Runs tool handlers for one conversation, in a pool of up to ``workers`` threads.

    The pool starts its threads one by one as requests arrive, so a conversation that never gets
    a tool request has none. ``send`` puts a :class:`ToolResponse` on the wire, ``answered``
    tells the conversation state that a request was answered, ``report`` passes failures to the
    user's error callbacks; ``secrets`` are masked in every error text.
    """

    def __init__(
        self,
        *,
        send: Callable[[ToolResponse], None],
        answered: Callable[[str], None],
        report: Callable[[BlackBoxError], None],
        workers: int = 8,
        timeout: Optional[float] = 30.0,
        max_pending: int = 64,
        clock: Callable[[], float] = time.monotonic,
        secrets: Tuple[str, ...] = (),
    ) -> None:
        if workers < 1:
            raise ValueError("tool_workers must be at least 1")
        self._send = send
        self._answered = answered
        self._report = report
        self._workers = workers
        self.timeout = timeout
        self.max_pending = max_pending
        self._clock = clock
        self._secrets = secrets
        self._handlers: Dict[str, Tuple[ToolHandler, Optional[inspect.Signature]]] = {}
        self._lock = threading.Lock()
        self._pending: Dict[str, Tuple[ToolRequest, Optional[float]]] = {}
        self._recent = RecentIds(REMEMBERED_TOOL_IDS)
        self._pool: Optional[_Pool] = None
        self._stopped: List[_Pool] = []
        """Pools stopped but not joined yet (see :meth:`stop`)."""
        self._closed = False

    # --- registration ----------------------------------------------------------------------------

    def register(self, name: str, handler: ToolHandler) -> None:
        """Run ``handler`` for requests of tool ``name`` (a later registration replaces it).

        Its signature is read here, once: a callable without one Python can read (a builtin
        such as ``max``) is called with the request's arguments as keyword arguments."""
        if not callable(handler):
            raise TypeError("a tool handler must be callable")
        if not isinstance(name, str) or not name:
            raise UsageError(f"a tool needs a non-empty str name, got {name!r}")
        self._handlers[name] = (handler, handler_signature(handler))

    @property
    def names(self) -> "list[str]":
        """The registered tool names."""
        return sorted(self._handlers)

    # --- requests --------------------------------------------------------------------------------

    def submit(self, request: ToolRequest) -> None:
        """Start answering ``request``: at once on a problem, else through the pool."""
        with self._lock:
            if request.id in self._pending or request.id in self._recent:
                log.warning(
                    "tool request %s for %s arrived again; answered once only",
                    self._shown(request.id),
                    self._shown(request.tool_name),
                )
                return
            deadline = None if self.timeout is None else self._clock() + self.timeout
            self._pending[request.id] = (request, deadline)
            crowded = len(self._pending) > self.max_pending
        if crowded:
            # A flood of requests must not queue up without bound behind the pool.
            self._fail(request, f"more than {self.max_pending} tool requests in flight")
            return
        entry = self._handlers.get(request.tool_name)
        if entry is None:
            self._fail(
                request, f"no handler for tool {self._shown(request.tool_name)} on this client"
            )
            return
        handler, signature = entry
        try:
            args, kwargs = bind_arguments(handler, request.args, signature)
        except ToolArgumentsError as exc:
            self._fail(request, str(exc))
            return
        with self._lock:
            pool = None if self._closed else self._pool or _Pool(self._workers, self._run)
            self._pool = pool
        if pool is None:
            self._fail(request, "the conversation is closing")
        else:
            pool.submit((request, handler, args, kwargs))

    def expire(self) -> Optional[float]:
        """Answer requests past their timeout; return the next deadline (monotonic) or ``None``."""
        now = self._clock()
        with self._lock:
            late = [
                req
                for req, deadline in self._pending.values()
                if deadline is not None and deadline <= now
            ]
            upcoming = [d for _, d in self._pending.values() if d is not None and d > now]
        for request in late:
            self._fail(
                request, f"tool {self._shown(request.tool_name)} timed out after {self.timeout:g} s"
            )
        return min(upcoming, default=None)

    @property
    def on_tool_thread(self) -> bool:
        """True when called from inside one of this runner's handlers."""
        return getattr(_running, "runner", None) is self

    @property
    def pending(self) -> int:
        """How many requests are waiting for an answer."""
        with self._lock:
            return len(self._pending)

    # --- shutdown --------------------------------------------------------------------------------

    def restart(self) -> None:
        """Take work again after :meth:`shutdown` (a reconnected conversation keeps its tools)."""
        with self._lock:
            self._closed = False
            self._pending.clear()

    def stop(self, wait: float = 0.0) -> None:
        """Stop taking work and give running handlers up to ``wait`` seconds to return, quietly:
        the reader thread calls it when the socket closes, and :meth:`shutdown` (``close()``)
        then waits for what is left and names it."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
            if pool is not None:
                self._stopped.append(pool)
            pools = list(self._stopped)
        if pool is not None:
            pool.stop()
        if self.on_tool_thread:
            wait = 0.0
        deadline = time.monotonic() + wait
        for stopped in pools:
            stopped.join(max(0.0, deadline - time.monotonic()))

    def shutdown(self, timeout: float) -> bool:
        """Stop taking work and wait up to ``timeout`` seconds for running handlers.

        Returns False when a handler was still running: a WARNING names it, its daemon thread
        finishes on its own later (it never holds the interpreter at exit) and its result is
        dropped, since the conversation is gone.
        """
        self.stop()
        with self._lock:
            pools, self._stopped = self._stopped, []
        if self.on_tool_thread:
            timeout = 0.0  # a handler cannot wait for the pool it runs in, itself included
        deadline = time.monotonic() + timeout
        stuck = [r for pool in pools for r in pool.join(max(0.0, deadline - time.monotonic()))]
        for request in stuck:
            log.warning(
                "tool %s (request %s) was still running when the conversation closed; its "
                "thread is left to finish on its own and its result will be dropped",
                self._shown(request.tool_name),
                self._shown(request.id),
            )
        return not stuck

    # --- internals -------------------------------------------------------------------------------

    def _run(self, job: _Job) -> None:
        request = job[0]
        _running.runner = self
        try:
            self._run_handler(*job)
        except Exception as exc:  # a bug of ours must not leave the request unanswered
            log.exception("tool request %s could not be handled", self._shown(request.id))
            self._fail(request, f"tool {self._shown(request.tool_name)} could not be run: {exc}")
        finally:
            _running.runner = None

    def _run_handler(
        self,
        request: ToolRequest,
        handler: ToolHandler,
        args: Tuple[Any, ...],
        kwargs: Dict[str, Any],
    ) -> None:
        try:
            value = handler(*args, **kwargs)
        except Exception as exc:
            log.exception("tool %s raised", self._shown(request.tool_name))
            self._fail(
                request,
                f"tool {self._shown(request.tool_name)} failed: {type(exc).__name__}: {exc}",
            )
            return
        try:
            result = json_result(value)
        except (TypeError, ValueError) as exc:
            self._fail(
                request,
                f"tool {self._shown(request.tool_name)} returned a value that is not JSON: {exc}",
            )
            return
        self._answer(request, result)

    def _fail(self, request: ToolRequest, message: str) -> None:
        if self._claim(request):
            # Reported before the answer goes out, so on_error has seen it by the time the agent
            # (and any ask() waiting on the turn) moves on.
            message = self._clean(message)
            log.warning(
                "tool request %s answered with an error: %s", self._shown(request.id), message
            )
            self._report(ToolError(message, request.tool_name, request.id))
            self._deliver(request, {"error": message})

    def _answer(self, request: ToolRequest, result: Any) -> None:
        if self._claim(request):
            self._deliver(request, result)

    def _claim(self, request: ToolRequest) -> bool:
        """Take ``request`` out of the pending set; False if it was already answered."""
        with self._lock:
            if self._pending.pop(request.id, None) is None:
                return False
            self._recent.add(request.id)
        return True

    def _deliver(self, request: ToolRequest, result: Any) -> None:
        try:
            try:
                self._send(ToolResponse(id=request.id, result=result))
            except UsageError as exc:  # the result cannot be sent (too large): the agent gets why
                message = self._clean(
                    f"tool {self._shown(request.tool_name)} result cannot be sent: {exc}"
                )
                log.warning("tool request %s: %s", self._shown(request.id), message)
                self._report(ToolError(message, request.tool_name, request.id))
                self._send(ToolResponse(id=request.id, result={"error": message}))
        except BlackBoxError as exc:
            log.warning("could not answer tool request %s: %s", self._shown(request.id), exc)
        finally:
            self._answered(request.id)

    def _clean(self, text: str) -> str:
        return redact_text(text, *self._secrets)

    def _shown(self, text: str) -> str:
        """How a message quotes a tool name or request id: the service picks them, so they are
        masked, escaped (a lone surrogate included) and cut short."""
        quoted = repr(self._clean(text))
        return quoted if len(quoted) <= _QUOTED_CHARS else quoted[:_QUOTED_CHARS] + "…"
