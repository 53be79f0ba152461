"""The REST client against a hostile server (issue 12, items 11-15): every failure is typed,
plainly worded, secret-free and bounded in time and memory."""

import gc
import logging
import socket
import time
from typing import Any, Callable, Dict, Iterator, List

import psutil
import pytest
import requests
from http_peer import (
    Behaviour,
    HttpPeer,
    bad_gzip,
    bomb,
    deep_json,
    drip_body,
    drip_headers,
    echo_credentials,
    redirect_to,
    same_page,
)

from blackbox_sync.errors import ApiAuthenticationError, ApiError, ProtocolError, UsageError
from blackbox_sync.rest import (
    ApiConnectionError,
    ApiRedirectError,
    ApiResponseError,
    ApiTimeoutError,
    Client,
    DeadlineAdapter,
    InvalidUrlError,
    PagingError,
    ResponseTooLargeError,
    RetryPolicy,
)

KEY = "sk-hostile-key-0123456789"
FAST = RetryPolicy(max_retries=3, backoff=0.01, jitter=False)
# The internals item 15 is about: none of them may reach a message.
INTERNALS = ("HTTPConnectionPool", "Max retries", "urllib3", "NewConnectionError", "object at 0x")


PeerFactory = Callable[[Behaviour], HttpPeer]


def client_for(peer: HttpPeer, **options: Any) -> Client:
    options.setdefault("retry", FAST)
    return Client(api_key=KEY, base_url=peer.base_url, **options)


def assert_plain(text: str) -> None:
    assert KEY not in text
    for internal in INTERNALS:
        assert internal not in text, text


@pytest.fixture
def serve() -> Iterator[PeerFactory]:
    peers: List[HttpPeer] = []

    def start(behaviour: Behaviour) -> HttpPeer:
        peer = HttpPeer(behaviour).__enter__()
        peers.append(peer)
        return peer

    yield start
    for peer in peers:
        peer.__exit__()


# -- item 11: the total timeout covers connect, headers, body and every retry ------------------


@pytest.mark.parametrize(
    "behaviour",
    [drip_headers, drip_body(200), drip_body(401)],
    ids=["headers", "body", "401-body"],
)
def test_a_dripping_server_is_cut_off_at_the_total_timeout(
    serve: PeerFactory, behaviour: Behaviour, caplog: pytest.LogCaptureFixture
) -> None:
    peer = serve(behaviour)
    policy = RetryPolicy(max_retries=5, backoff=0.01, total_timeout=1.0)
    with client_for(peer, timeout=0.5, retry=policy) as client:
        started = time.monotonic()
        with pytest.raises(ApiTimeoutError) as info:
            client.agents.list()
        elapsed = time.monotonic() - started
    assert elapsed < 1.0 + 2
    text = str(info.value)
    assert "total timeout of 1 s" in text
    assert f"GET {peer.base_url}/api/v1/agents" in text
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, ApiConnectionError)
    assert info.value.__cause__ is None
    assert_plain(text)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # the error says it


@pytest.mark.parametrize(
    ("behaviour", "mount"),
    [(drip_body(200), False), (drip_headers, True)],
    ids=["body-plain-session", "headers-with-adapter"],
)
def test_the_deadline_also_holds_on_the_callers_own_session(
    serve: PeerFactory, behaviour: Behaviour, mount: bool
) -> None:
    peer = serve(behaviour)
    policy = RetryPolicy(max_retries=0, total_timeout=1.0)
    with requests.Session() as session:
        if mount:
            session.mount("http://", DeadlineAdapter())
        with client_for(peer, timeout=0.5, retry=policy, session=session) as client:
            started = time.monotonic()
            with pytest.raises(ApiTimeoutError):
                client.misc.concurrency()
            assert time.monotonic() - started < 1.0 + 2


def test_the_total_timeout_bounds_the_first_attempt_too(serve: PeerFactory) -> None:
    peer = serve(drip_headers)
    policy = RetryPolicy(max_retries=0, total_timeout=0.5)
    with client_for(peer, timeout=30, retry=policy) as client:
        started = time.monotonic()
        with pytest.raises(ApiTimeoutError):
            client.agents.list()
        assert time.monotonic() - started < 0.5 + 2


# -- item 12: untyped exceptions ---------------------------------------------------------------


def test_a_bad_gzip_body_is_a_typed_error(serve: PeerFactory) -> None:
    peer = serve(bad_gzip)
    with client_for(peer) as client, pytest.raises(ApiResponseError) as info:
        client.agents.list()
    assert "could not be decoded (bad gzip/deflate)" in str(info.value)
    assert "(after 1 attempt)" in str(info.value)  # not worth repeating
    assert peer.hits == 1
    assert_plain(str(info.value))


@pytest.mark.parametrize(
    "location",
    ["/api/v1/agents?token=" + KEY, "file:///etc/passwd", "http://[::1/x"],
    ids=["loop", "file-scheme", "malformed"],
)
def test_a_redirect_is_refused_with_a_typed_error(serve: PeerFactory, location: str) -> None:
    peer = serve(redirect_to(location))
    with client_for(peer) as client, pytest.raises(ApiRedirectError) as info:
        client.agents.list()
    error = info.value
    assert isinstance(error, ApiError)
    assert error.status == 302
    assert "does not follow redirects" in str(error)
    assert "(GET /api/v1/agents)" in str(error)
    assert error.location.startswith(location.split("?")[0][:10])
    assert peer.hits == 1  # a loop is not walked at all
    assert_plain(str(error) + error.location)


@pytest.mark.parametrize(
    "base_url", ["http://[::1", "http://127.0.0.1:port/", "http://user:pw@[::1"]
)
def test_a_malformed_base_url_is_a_typed_error(base_url: str) -> None:
    with pytest.raises(InvalidUrlError) as info:
        Client(api_key=KEY, base_url=base_url)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, ApiConnectionError)
    assert "invalid base_url" in str(info.value)
    assert "pw" not in str(info.value)


def test_an_error_body_nested_500_deep_keeps_its_status_and_text(serve: PeerFactory) -> None:
    peer = serve(deep_json(400))
    with client_for(peer) as client, pytest.raises(ApiError) as info:
        client.agents.list()
    assert info.value.status == 400
    assert info.value.body is None  # too deep to walk: kept as text
    assert info.value.detail.startswith('{"title": "Bad", "detail": {"a":{"a":')
    assert len(info.value.detail) <= 300


def test_a_success_body_too_deep_for_json_loads_is_a_protocol_error(serve: PeerFactory) -> None:
    peer = serve(deep_json(200, depth=100_000))  # deep enough to break json.loads itself
    with client_for(peer) as client, pytest.raises(ProtocolError, match="nested deeper than 100"):
        client.agents.list()


# -- item 13: a cap on decoded bodies ------------------------------------------------------


def rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


@pytest.mark.parametrize("cap", [None, 1024 * 1024], ids=["default-32MiB", "1MiB"])
def test_a_gzip_bomb_stops_at_the_cap(serve: PeerFactory, cap: "int | None") -> None:
    peer = serve(bomb)
    options: Dict[str, Any] = {} if cap is None else {"max_response_bytes": cap}
    before = rss()
    with client_for(peer, **options) as client, pytest.raises(ResponseTooLargeError) as info:
        client.agents.list()
    grown = rss() - before
    limit = 32 * 1024 * 1024 if cap is None else cap
    assert info.value.limit == limit
    assert f"max_response_bytes={limit:,}" in str(info.value)
    assert isinstance(info.value, ApiConnectionError)
    # The bomb decodes to 64 MiB; what is held stays near the cap (plus interpreter noise).
    assert grown < limit + 48 * 1024 * 1024, f"RSS grew by {grown / 2**20:.0f} MiB"
    assert peer.hits == 1


def test_max_response_bytes_is_checked() -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(UsageError):
            Client(api_key=KEY, base_url="http://127.0.0.1:9", max_response_bytes=bad)  # type: ignore[arg-type]


# -- item 14: paging against a server that ignores the page -----------------------------------


def test_a_search_whose_pages_repeat_stops_with_a_paging_error(serve: PeerFactory) -> None:
    peer = serve(same_page)
    seen: List[str] = []
    with client_for(peer) as client:
        walk = iter(client.call_results.search(page_size=50))
        seen += [str(next(walk).call_id) for _ in range(50)]
        with pytest.raises(PagingError) as info:
            next(walk)
    assert len(set(seen)) == 50  # the first page, once
    assert peer.hits == 2
    assert "page 1 is the same as page 0" in str(info.value)
    assert "POST /callresults/search" in str(info.value)
    assert isinstance(info.value, ProtocolError)


@pytest.mark.parametrize("walk", ["queue", "agents"])
def test_skip_take_walks_stop_on_a_repeated_page_or_at_max_pages(
    serve: PeerFactory, walk: str
) -> None:
    peer = serve(same_page)
    with client_for(peer) as client:
        pager = (
            client.calls.iter_queue(page_size=50)
            if walk == "queue"
            else client.agents.iter_all(page_size=50)
        )
        with pytest.raises(PagingError):
            list(pager)
        bounded = (
            client.calls.iter_queue(page_size=50, max_pages=1)
            if walk == "queue"
            else client.agents.iter_all(page_size=50, max_pages=1)
        )
        assert len(list(bounded)) == 50
    assert peer.hits == 3


# -- item 15: an unreachable service, said plainly -------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_service_names_url_reason_and_attempts() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    with (
        Client(api_key=KEY, base_url=url, retry=FAST) as client,
        pytest.raises(ApiConnectionError) as info,
    ):
        client.web_integrations.discover("tok-secret-42")
    text = str(info.value)
    assert text == (
        f"GET {url}/api/v1/web-integrations/discover: connection refused (after 4 attempts)"
    )
    assert info.value.attempts == 4
    assert not isinstance(info.value, ApiTimeoutError)
    assert_plain(text)


def test_a_read_timeout_is_an_api_timeout_error(serve: PeerFactory) -> None:
    peer = serve(drip_body(200))
    policy = RetryPolicy(max_retries=1, backoff=0.01, total_timeout=None)
    with (
        client_for(peer, timeout=(1.0, 0.1), retry=policy) as client,
        pytest.raises(ApiTimeoutError) as info,
    ):
        client.misc.concurrency()
    assert "timed out waiting for the answer (after 2 attempts)" in str(info.value)
    assert_plain(str(info.value))


# -- item 1 for REST: what the server echoes is masked -----------------------------------------


def test_an_error_that_echoes_the_key_is_masked_everywhere(
    serve: PeerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    peer = serve(echo_credentials)
    with client_for(peer) as client, pytest.raises(ApiAuthenticationError) as info:
        client.agents.list()
    error = info.value
    everything = " ".join(
        [
            str(error),
            repr(error),
            error.title,
            error.detail,
            str(error.instance),
            str(error.request_id),
            str(error.body),
            caplog.text,
        ]
    )
    assert KEY not in everything
    assert error.status == 401
    assert "***" in error.detail
