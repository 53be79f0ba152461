"""Outbound calls (PROTOCOL.md §8.2): create, bulk, get, cancel, the queue and status statistics."""

from datetime import datetime
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import attrs

from blackbox_sync.errors import ConflictError, NotFoundError
from blackbox_sync.protocol.codec import LooseStr, unstructure
from blackbox_sync.rest._base import Pager, Resource, drop_none, path
from blackbox_sync.rest.model import Model


class CallStatus:
    """Known values of a call's ``status``; others the service may add arrive as plain text."""

    UNKNOWN = "Unknown"
    CREATED = "Created"
    PENDING = "Pending"
    QUEUED = "Queued"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELED = "Canceled"
    FINAL = frozenset({COMPLETED, FAILED, CANCELED})


@attrs.define
class CallRequest:
    """One call to schedule (``POST /calls`` body, or an item of :meth:`Calls.bulk`)."""

    endpoint: str
    """A phone number (``+15550100``) or a SIP URI."""
    additional_data: Optional[Dict[str, Any]] = None
    priority: Optional[int] = None
    call_deadline: Optional[datetime] = None
    timezone: Optional[str] = None
    override_outbound_config: Optional[Dict[str, Any]] = None


@attrs.define
class Call(Model):
    """A scheduled or finished call."""

    call_id: LooseStr = LooseStr("")
    agent_id: Optional[LooseStr] = None
    org_id: Optional[LooseStr] = None
    endpoint: Optional[str] = None
    status: Optional[LooseStr] = None
    """A :class:`CallStatus` value, or a newer one as text."""
    created_time: Optional[datetime] = None
    next_schedule_time: Optional[datetime] = None
    completed_time: Optional[datetime] = None
    record_id: Optional[LooseStr] = None
    inspector_url: Optional[str] = None
    additional_data: Optional[Dict[str, Any]] = None
    priority: Optional[int] = None
    call_deadline: Optional[datetime] = None
    timezone: Optional[str] = None

    @property
    def finished(self) -> bool:
        """True once the call completed, failed or was canceled."""
        return self.status in CallStatus.FINAL


@attrs.define
class CallQueue(Model):
    """One page of ``GET /calls/queue/list``."""

    calls: List[Call] = attrs.field(factory=list)
    total: Optional[int] = None


@attrs.define
class CallStatistics(Model):
    """Call counts per status (``GET /calls/statistics/statuses``)."""

    statuses: Dict[str, int] = attrs.field(factory=dict)


def _call_body(call: Union[CallRequest, Mapping[str, Any]]) -> Dict[str, Any]:
    if isinstance(call, CallRequest):
        body: Dict[str, Any] = unstructure(call)
        return body
    return dict(call)


class Calls(Resource):
    """``client.calls``."""

    def create(
        self,
        agent_id: str,
        endpoint: str,
        *,
        additional_data: Optional[Mapping[str, Any]] = None,
        priority: Optional[int] = None,
        call_deadline: Optional[datetime] = None,
        timezone: Optional[str] = None,
        override_outbound_config: Optional[Mapping[str, Any]] = None,
        retry: bool = False,
    ) -> Call:
        """Schedule one outbound call to ``endpoint``.

        Never retried unless ``retry=True``: a repeated POST would dial the number twice.
        """
        request = CallRequest(
            endpoint=endpoint,
            additional_data=None if additional_data is None else dict(additional_data),
            priority=priority,
            call_deadline=call_deadline,
            timezone=timezone,
            override_outbound_config=(
                None if override_outbound_config is None else dict(override_outbound_config)
            ),
        )
        return self._one(
            Call,
            "POST",
            "/calls",
            params={"agentId": agent_id},
            body=_call_body(request),
            retry=retry,
        )

    def bulk(
        self,
        agent_id: str,
        calls: Iterable[Union[CallRequest, Mapping[str, Any]]],
        *,
        retry: bool = False,
    ) -> List[Call]:
        """Schedule many calls in one request (the body is a JSON array). Not retried by default."""
        body = [_call_body(c) for c in calls]
        return self._many(
            Call, "POST", "/calls/bulk", params={"agentId": agent_id}, body=body, retry=retry
        )

    def get(self, call_id: str) -> Call:
        """One call by id."""
        return self._one(Call, "GET", path("/calls/{}", call_id))

    def cancel(self, call_id: str) -> None:
        """Cancel a scheduled call (not one that is running or finished).

        DELETE is retried on transient failures, and an attempt that timed out may still have
        canceled the call; its retry then gets a 404 or 409. That answer counts as success when
        the call is gone or (checked with a GET) ``Canceled``. A 409 on the first attempt, or
        for a call that is running, is raised as :class:`~blackbox_sync.ConflictError`.
        """
        try:
            self._send("DELETE", path("/calls/{}", call_id))
        except (NotFoundError, ConflictError) as exc:
            if not exc.earlier_attempt_uncertain:
                raise
            if isinstance(exc, ConflictError) and self.get(call_id).status != CallStatus.CANCELED:
                raise

    def queue(
        self,
        *,
        skip: int = 0,
        take: int = 20,
        agent_id: Optional[str] = None,
        statuses: Optional[Sequence[str]] = None,
        from_date: Optional[datetime] = None,
        to_date: Optional[datetime] = None,
    ) -> CallQueue:
        """One page of the organisation's call queue (``take`` ≤ 1000)."""
        params = drop_none(
            skip=skip,
            take=take,
            agentId=agent_id,
            status=None if statuses is None else list(statuses),
            fromDate=from_date,
            toDate=to_date,
        )
        return self._one(CallQueue, "GET", "/calls/queue/list", params=params)

    def iter_queue(
        self,
        *,
        page_size: int = 100,
        agent_id: Optional[str] = None,
        statuses: Optional[Sequence[str]] = None,
        from_date: Optional[datetime] = None,
        to_date: Optional[datetime] = None,
        max_pages: Optional[int] = None,
    ) -> "Pager[CallQueue, Call]":
        """Every queued call, fetched lazily ``page_size`` at a time (skip/take paging).

        ``max_pages`` stops the walk after that many pages; a service that ignores ``skip``
        (sends the same page again) raises :class:`~blackbox_sync.rest.PagingError`.
        """

        def fetch(n: int) -> CallQueue:
            return self.queue(
                skip=n * page_size,
                take=page_size,
                agent_id=agent_id,
                statuses=statuses,
                from_date=from_date,
                to_date=to_date,
            )

        def has_next(page: CallQueue, n: int) -> bool:
            seen = n * page_size + len(page.calls)
            return seen < page.total if page.total is not None else len(page.calls) == page_size

        return Pager(
            fetch,
            lambda page: page.calls,
            has_next,
            max_pages=max_pages,
            what="GET /calls/queue/list",
        )

    def statistics(
        self,
        *,
        agent_id: Optional[str] = None,
        from_date: Optional[datetime] = None,
        to_date: Optional[datetime] = None,
    ) -> CallStatistics:
        """How many calls are in each status."""
        params = drop_none(agentId=agent_id, fromDate=from_date, toDate=to_date)
        return self._one(CallStatistics, "GET", "/calls/statistics/statuses", params=params)
