"""Call history (PROTOCOL.md §8.3): ``POST /callresults/search``, walked lazily page by page."""

import math
from datetime import datetime
from typing import Any, Dict, List, Mapping, Optional, Sequence

import attrs

from blackbox_sync.protocol.codec import LooseStr, unstructure
from blackbox_sync.rest._base import Pager, Resource, drop_none
from blackbox_sync.rest.model import Model


@attrs.define
class CallResult(Model):
    """One finished conversation or call: status, transcript, post-call result, links."""

    call_id: LooseStr = LooseStr("")
    agent_id: Optional[LooseStr] = None
    org_id: Optional[LooseStr] = None
    call_status: Optional[LooseStr] = None
    """A :class:`~blackbox_sync.rest.calls.CallStatus` value, or a newer one as text."""
    call_type: Optional[LooseStr] = None
    endpoint: Optional[str] = None
    call_additional_data: Optional[Dict[str, Any]] = None
    created_time: Optional[datetime] = None
    completed_time: Optional[datetime] = None
    duration_seconds: Optional[float] = None
    """The exact billable duration."""
    transcription: Any = None
    """Usually ``[{speaker, text, startTime?, endTime?}]``; undocumented, so kept as sent."""
    result: Any = None
    """Post-call result (``finishReason``, ``postCallAnalysis``, ...); undocumented."""
    error_message: Optional[str] = None
    server_job_id: Optional[LooseStr] = None
    inspector_url: Optional[str] = None
    recording_url: Optional[str] = None
    sip: Any = None
    score: Optional[float] = None
    highlights: Any = None


@attrs.define
class CallResultsPage(Model):
    """One page of a search, with its totals (and aggregations, if asked for)."""

    results: List[CallResult] = attrs.field(factory=list)
    total_count: Optional[int] = None
    page: Optional[int] = None
    size: Optional[int] = None
    total_pages: Optional[int] = None
    execution_time_ms: Optional[float] = None
    aggregations: Optional[Dict[str, Any]] = None


def _has_next(page: CallResultsPage, index: int, size: int) -> bool:
    pages = page.total_pages
    if pages is None and page.total_count is not None:
        pages = math.ceil(page.total_count / (page.size or size))
    return index + 1 < pages if pages is not None else len(page.results) >= size


class CallResults(Resource):
    """``client.call_results``."""

    def search(
        self,
        *,
        agent_ids: Optional[Sequence[str]] = None,
        call_statuses: Optional[Sequence[str]] = None,
        call_ids: Optional[Sequence[str]] = None,
        from_date: Optional[datetime] = None,
        to_date: Optional[datetime] = None,
        search_text: Optional[str] = None,
        endpoint: Optional[str] = None,
        additional_data: Optional[Mapping[str, Any]] = None,
        sort_field: Optional[str] = None,
        sort_direction: Optional[str] = None,
        include_aggregations: Optional[bool] = None,
        aggregation_fields: Optional[Sequence[str]] = None,
        page_size: int = 50,
        start_page: int = 0,
        max_pages: Optional[int] = None,
    ) -> "Pager[CallResultsPage, CallResult]":
        """Search the call history; iterate the result for :class:`CallResult` items.

        Nothing is fetched until you iterate; pages (0-based) are then requested one at a time
        until ``totalPages`` (or ``max_pages``); a service that sends the same page again for
        the next page number raises :class:`~blackbox_sync.rest.PagingError`.
        ``additional_data={"campaignId": "x"}`` filters on the call's additional data (plain
        keys get the ``callAdditionalData.`` prefix the API expects).
        ``sort_direction`` is ``"Ascending"`` or ``"Descending"``.
        """
        filters = None
        if additional_data is not None:
            filters = {
                (k if "." in k else f"callAdditionalData.{k}"): v
                for k, v in additional_data.items()
            }
        criteria = drop_none(
            agentIds=_list(agent_ids),
            callStatuses=_list(call_statuses),
            callIds=_list(call_ids),
            fromDate=from_date,
            toDate=to_date,
            searchText=search_text,
            endpoint=endpoint,
            additionalDataFilters=filters,
            sortField=sort_field,
            sortDirection=sort_direction,
            includeAggregations=include_aggregations,
            aggregationFields=_list(aggregation_fields),
        )
        body: Dict[str, Any] = unstructure(criteria)

        def fetch(index: int) -> CallResultsPage:
            # A search reads only, so repeating the POST is harmless: retry it like a GET.
            return self._one(
                CallResultsPage,
                "POST",
                "/callresults/search",
                body={"page": index, "size": page_size, **body},
                retry=True,
            )

        return Pager(
            fetch,
            lambda page: page.results,
            lambda page, index: _has_next(page, index, page_size),
            start=start_page,
            max_pages=max_pages,
            what="POST /callresults/search",
        )


def _list(values: Optional[Sequence[str]]) -> Optional[List[str]]:
    return None if values is None else list(values)
