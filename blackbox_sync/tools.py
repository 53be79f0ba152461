"""Client-side tools: run each ``websocketToolRequest`` in a thread pool and answer it once.

Every request gets exactly one answer, so the agent never waits forever: the handler's result, or
``{"error": "..."}`` when there is no handler, the arguments do not fit it, it raises, it returns
something that is not JSON, or it runs past its timeout (a late result is then dropped).
"""

import collections
import concurrent.futures
import inspect
import json
import logging
import threading
import time
from typing import Any, Callable, Deque, Dict, Optional, Set

from .convert import unstructure
from .errors import BlackBoxError, ToolError, UsageError
from .messages import ToolRequest, ToolResponse

log = logging.getLogger("blackbox_sync.tools")

ToolHandler = Callable[..., Any]

# Ids answered lately, so a duplicated request frame is not run twice.
_REMEMBERED_IDS = 1024
# Which runner's handler the current pool thread is running, if any.
_running = threading.local()


class ToolArgumentsError(ValueError):
    """The arguments of a tool request do not fit the handler's signature."""


def bind_arguments(handler: ToolHandler, args: Any) -> inspect.BoundArguments:
    """Match a request's ``args`` object to the handler's keyword parameters."""
    if not isinstance(args, dict):
        raise ToolArgumentsError(f"arguments must be a JSON object, got {type(args).__name__}")
    try:
        return inspect.signature(handler).bind(**args)
    except TypeError as exc:
        raise ToolArgumentsError(f"arguments do not fit the tool: {exc}") from None


def json_result(value: Any) -> Any:
    """``value`` as plain JSON data (attrs objects are unstructured); raises if it is not JSON."""
    plain = unstructure(value)
    json.dumps(plain, allow_nan=False)
    return plain


class ToolRunner:
    """Runs tool handlers for one conversation, in a pool of up to ``workers`` threads.

    The pool starts its threads one by one as requests arrive (``ThreadPoolExecutor`` does), so
    a conversation that never gets a tool request has none. ``send`` puts a
    :class:`ToolResponse` on the wire, ``answered`` tells the conversation state that a request
    was answered, ``report`` passes failures to the user's error callbacks.
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
        self._handlers: Dict[str, ToolHandler] = {}
        self._lock = threading.Lock()
        self._pending: Dict[str, tuple[ToolRequest, Optional[float]]] = {}
        self._recent: Deque[str] = collections.deque(maxlen=_REMEMBERED_IDS)
        self._recent_set: Set[str] = set()
        self._futures: Set[concurrent.futures.Future[None]] = set()
        self._pool: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._closed = False

    # --- registration ----------------------------------------------------------------------------

    def register(self, name: str, handler: ToolHandler) -> None:
        """Run ``handler`` for requests of tool ``name`` (a later registration replaces it)."""
        if not callable(handler):
            raise TypeError("a tool handler must be callable")
        self._handlers[name] = handler

    @property
    def names(self) -> "list[str]":
        """The registered tool names."""
        return sorted(self._handlers)

    # --- requests --------------------------------------------------------------------------------

    def submit(self, request: ToolRequest) -> None:
        """Start answering ``request``: at once on a problem, else through the pool."""
        with self._lock:
            if request.id in self._pending or request.id in self._recent_set:
                log.warning(
                    "tool request %r for %s arrived again; answered once only",
                    request.id,
                    request.tool_name,
                )
                return
            deadline = None if self.timeout is None else self._clock() + self.timeout
            self._pending[request.id] = (request, deadline)
            crowded = len(self._pending) > self.max_pending
        if crowded:
            # A flood of requests must not queue up without bound behind the pool.
            self._fail(request, f"more than {self.max_pending} tool requests in flight")
            return
        handler = self._handlers.get(request.tool_name)
        if handler is None:
            self._fail(request, f"no handler for tool {request.tool_name!r} on this client")
            return
        try:
            bound = bind_arguments(handler, request.args)
        except ToolArgumentsError as exc:
            self._fail(request, str(exc))
            return
        with self._lock:
            if self._closed:
                pool = None
            else:
                if self._pool is None:
                    self._pool = concurrent.futures.ThreadPoolExecutor(
                        self._workers, thread_name_prefix="blackbox-tool"
                    )
                pool = self._pool
                future = pool.submit(self._run, request, handler, bound)
                self._futures.add(future)
                future.add_done_callback(self._futures.discard)
        if pool is None:
            self._fail(request, "the conversation is closing")

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
            self._fail(request, f"tool {request.tool_name!r} timed out after {self.timeout:g} s")
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

    def shutdown(self, timeout: float) -> bool:
        """Stop taking work and wait up to ``timeout`` seconds for running handlers.

        Returns False when a handler was still running: its thread finishes on its own later and
        its result is dropped, since the conversation is gone.
        """
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
            futures = list(self._futures)
        if pool is None:
            return True
        pool.shutdown(wait=False, cancel_futures=True)
        if self.on_tool_thread:
            timeout = 0.0  # a handler cannot wait for the pool it runs in, itself included
        deadline = time.monotonic() + timeout
        current = threading.current_thread()
        concurrent.futures.wait(futures, timeout=timeout)
        # The pool has no join with a timeout; its worker threads are what must not outlive us.
        for thread in list(getattr(pool, "_threads", ())):
            if thread is not current:
                thread.join(max(0.0, deadline - time.monotonic()))
        return all(f.done() for f in futures)

    # --- internals -------------------------------------------------------------------------------

    def _run(
        self, request: ToolRequest, handler: ToolHandler, bound: inspect.BoundArguments
    ) -> None:
        _running.runner = self
        try:
            self._run_handler(request, handler, bound)
        finally:
            _running.runner = None

    def _run_handler(
        self, request: ToolRequest, handler: ToolHandler, bound: inspect.BoundArguments
    ) -> None:
        try:
            value = handler(*bound.args, **bound.kwargs)
        except Exception as exc:
            log.exception("tool %s raised", request.tool_name)
            self._fail(request, f"tool {request.tool_name!r} failed: {type(exc).__name__}: {exc}")
            return
        try:
            result = json_result(value)
        except (TypeError, ValueError) as exc:
            self._fail(
                request, f"tool {request.tool_name!r} returned a value that is not JSON: {exc}"
            )
            return
        self._answer(request, result)

    def _fail(self, request: ToolRequest, message: str) -> None:
        if self._claim(request):
            # Reported before the answer goes out, so on_error has seen it by the time the agent
            # (and any ask() waiting on the turn) moves on.
            log.warning("tool request %r answered with an error: %s", request.id, message)
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
            if len(self._recent) == self._recent.maxlen:
                self._recent_set.discard(self._recent[0])
            self._recent.append(request.id)
            self._recent_set.add(request.id)
        return True

    def _deliver(self, request: ToolRequest, result: Any) -> None:
        try:
            self._send(ToolResponse(id=request.id, result=result))
        except UsageError as exc:  # the result cannot be sent (too large): the agent gets why
            message = f"tool {request.tool_name!r} result cannot be sent: {exc}"
            log.warning("tool request %r: %s", request.id, message)
            self._report(ToolError(message, request.tool_name, request.id))
            try:
                self._send(ToolResponse(id=request.id, result={"error": message}))
            except BlackBoxError as again:
                log.warning("could not answer tool request %r: %s", request.id, again)
        except BlackBoxError as exc:
            log.warning("could not answer tool request %r: %s", request.id, exc)
        self._answered(request.id)
