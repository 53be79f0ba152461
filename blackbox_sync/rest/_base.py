"""What every resource group shares: the transport, decoding, paths and lazy paging."""

from typing import (
    Any,
    Callable,
    Generic,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Type,
    TypeVar,
)
from urllib.parse import quote

from blackbox_sync.errors import ProtocolError
from blackbox_sync.rest.http import HttpTransport, Params
from blackbox_sync.rest.model import Model, decode, decode_list, deep_merge

M = TypeVar("M", bound=Model)
P = TypeVar("P")
T = TypeVar("T")


def path(template: str, *ids: str) -> str:
    """``path("/agents/{}", agent_id)`` with each id quoted as one path segment."""
    return template.format(*(quote(str(i), safe="") for i in ids))


def drop_none(**values: Any) -> "dict[str, Any]":
    """The keyword arguments that were given (optional request fields are left off the wire)."""
    return {k: v for k, v in values.items() if v is not None}


class Resource:
    """One API area (``client.agents``, ``client.calls``, ...) on a shared transport."""

    def __init__(self, http: HttpTransport) -> None:
        self._http = http

    def __repr__(self) -> str:
        return f"<{type(self).__name__} at {self._http.base_url}>"

    def _send(
        self,
        method: str,
        url_path: str,
        *,
        params: Optional[Params] = None,
        body: Any = None,
        retry: Optional[bool] = None,
    ) -> Any:
        return self._http.request(method, url_path, params=params, json_body=body, retry=retry)

    def _one(
        self,
        cls: Type[M],
        method: str,
        url_path: str,
        *,
        params: Optional[Params] = None,
        body: Any = None,
        retry: Optional[bool] = None,
    ) -> M:
        data = self._send(method, url_path, params=params, body=body, retry=retry)
        return decode(data, cls, f"{method} {url_path}")

    def _many(
        self,
        cls: Type[M],
        method: str,
        url_path: str,
        *,
        params: Optional[Params] = None,
        body: Any = None,
        retry: Optional[bool] = None,
    ) -> List[M]:
        data = self._send(method, url_path, params=params, body=body, retry=retry)
        return decode_list(data, cls, f"{method} {url_path}")

    def _modify_put(
        self,
        current: M,
        url_path: str,
        *,
        params: Optional[Params] = None,
        changes: Mapping[str, Any],
        patches: Optional[Mapping[str, Optional[Mapping[str, Any]]]] = None,
        read_only: Sequence[str] = (),
    ) -> M:
        """PUT the whole of ``current`` with ``changes`` (wire names) and deep-merged ``patches``.

        The service replaces the object on PUT, so the body starts from everything it sent,
        unknown fields included; only what the caller changed differs.
        """
        body = current.to_wire()
        for key in read_only:
            body.pop(key, None)
        body.update({k: v for k, v in changes.items() if v is not None})
        for key, patch in (patches or {}).items():
            if patch is not None:
                base = body.get(key)
                body[key] = deep_merge(base if isinstance(base, dict) else {}, patch)
        return self._one(type(current), "PUT", url_path, params=params, body=body)


class PagingError(ProtocolError):
    """The service's paging cannot be followed: it sent the same page again for the next page
    number (it ignores the paging parameters), which would otherwise never end."""


class Pager(Generic[P, T]):
    """A lazy, restartable iterator over paged results: no request until you iterate.

    Iterating yields items across pages; :meth:`pages` yields the page objects (with totals and
    aggregations). Each new iteration starts again from the first page. A page that repeats the
    one before it raises :class:`PagingError` (before its items are yielded again);
    ``max_pages`` bounds a walk whatever the service says.
    """

    def __init__(
        self,
        fetch: Callable[[int], P],
        items: Callable[[P], List[T]],
        has_next: Callable[[P, int], bool],
        *,
        start: int = 0,
        max_pages: Optional[int] = None,
        what: str = "a paged request",
    ) -> None:
        self._fetch = fetch
        self._items = items
        self._has_next = has_next
        self._start = start
        self._max_pages = max_pages
        self._what = what

    def pages(self) -> Iterator[P]:
        """Fetch and yield one page at a time, until the last page (or ``max_pages``)."""
        index, fetched = self._start, 0
        previous: Optional[List[Any]] = None
        while self._max_pages is None or fetched < self._max_pages:
            page = self._fetch(index)
            fetched += 1
            items = self._items(page)
            current = _fingerprint(items)
            if items and current == previous:
                raise PagingError(
                    f"{self._what}: page {index} is the same as page {index - 1}; the service "
                    "ignores the paging parameters, so the walk stopped (pass max_pages=1 to "
                    "read only the first page)"
                )
            yield page
            # An empty page ends the walk even if the totals promise more (they can drift).
            if not items or not self._has_next(page, index):
                return
            previous = current
            index += 1

    def first_page(self) -> P:
        """Only the first page (for its totals or aggregations)."""
        return self._fetch(self._start)

    def __iter__(self) -> Iterator[T]:
        for page in self.pages():
            yield from self._items(page)


def _fingerprint(items: Sequence[Any]) -> List[Any]:
    # A model's equality leaves out `raw`; the wire form is what tells two pages apart.
    return [item.raw if isinstance(item, Model) else item for item in items]
