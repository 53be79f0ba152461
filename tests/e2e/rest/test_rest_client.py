"""The REST client's HTTP layer against the emulator on loopback: auth, errors, retries, secrets."""

import logging
import socket
from typing import Any, Dict, Iterator, List, Optional

import attrs
import pytest
import requests

import blackbox_sync.rest.http as rest_http
from blackbox_sync.errors import (
    ApiAuthenticationError,
    ApiError,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    ProtocolError,
    RateLimitError,
    UsageError,
)
from blackbox_sync.rest import ApiConnectionError, Client, RetryPolicy
from blackbox_sync.rest.http import api_base, retry_after
from blackbox_sync.testing import Emulator

FAST = RetryPolicy(max_retries=3, backoff=0.001, jitter=False)


@pytest.fixture
def client(emulator: Emulator) -> Iterator[Client]:
    emulator.rest.call_step_seconds = None
    with Client(api_key=emulator.api_key, base_url=emulator.base_url, retry=FAST) as c:
        yield c


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> List[float]:
    """Record the backoff waits instead of sleeping them."""
    recorded: List[float] = []
    monkeypatch.setattr(rest_http, "_sleep", recorded.append)
    return recorded


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestConfiguration:
    def test_no_key_is_a_clear_usage_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("BLACKBOX_API_KEY", raising=False)
        with pytest.raises(UsageError, match="BLACKBOX_API_KEY") as info:
            Client()
        assert not isinstance(info.value, AuthenticationError)  # nothing was refused: none given

    def test_key_and_base_url_from_the_environment(
        self, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("BLACKBOX_API_KEY", emulator.api_key)
        monkeypatch.setenv("BLACKBOX_BASE_URL", emulator.base_url + "/")
        with Client() as client:
            assert client.base_url == emulator.base_url
            assert client.agents.list() == []

    def test_plain_http_off_this_machine_is_refused(self) -> None:
        with pytest.raises(UsageError, match="plain text"):
            Client(api_key="k", base_url="http://blackbox.example")
        assert Client(api_key="k", base_url="http://blackbox.example", allow_insecure=True)

    def test_default_base_url(self) -> None:
        assert Client(api_key="k").base_url == "https://blackbox.dasha.ai"

    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ("https://blackbox.dasha.ai", "https://blackbox.dasha.ai"),
            ("wss://blackbox.ru.dasha.ai/", "https://blackbox.ru.dasha.ai"),
            ("ws://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("https://blackbox.dasha.ai/api/v1/", "https://blackbox.dasha.ai"),
        ],
    )
    def test_base_url_forms(self, given: str, expected: str) -> None:
        assert api_base(given) == expected

    def test_bearer_auth_and_user_agent(self, client: Client, emulator: Emulator) -> None:
        seen: Dict[str, str] = {}

        def capture(response: requests.Response, *args: object, **kwargs: object) -> None:
            seen.update(response.request.headers)

        client._http.session.hooks["response"].append(capture)
        client.misc.concurrency()
        assert seen["Authorization"] == f"Bearer {emulator.api_key}"
        assert seen["User-Agent"].startswith("blackbox-sync/")

    def test_a_callers_session_is_used_and_left_open(self, emulator: Emulator) -> None:
        session = requests.Session()
        closed: List[bool] = []
        session.close = lambda: closed.append(True)  # type: ignore[method-assign]
        with Client(api_key=emulator.api_key, base_url=emulator.base_url, session=session) as c:
            c.agents.list()
            assert c._http.session is session
        assert closed == []


class TestErrors:
    def test_bad_key_is_401(self, emulator: Emulator) -> None:
        client = Client(api_key="wrong-key", base_url=emulator.base_url)
        with pytest.raises(ApiAuthenticationError) as info:
            client.agents.list()
        error = info.value
        assert isinstance(error, AuthenticationError)
        assert isinstance(error, ApiError)
        assert error.status == 401
        assert error.title == "Unauthorized"
        assert error.detail == "Invalid API key"
        assert error.request_id is not None
        assert error.request_id.startswith("emu-")
        assert "GET /api/v1/agents" in str(error)
        assert "wrong-key" not in str(error)

    def test_403_is_an_authentication_error(self, client: Client, emulator: Emulator) -> None:
        emulator.rest.fail(403, path="/agents", detail="no access to this agent")
        with pytest.raises(AuthenticationError) as info:
            client.agents.get("agent-1")
        assert isinstance(info.value, ApiError)
        assert info.value.status == 403
        assert info.value.detail == "no access to this agent"

    def test_404(self, client: Client) -> None:
        with pytest.raises(NotFoundError) as info:
            client.agents.get("missing")
        assert info.value.status == 404
        assert info.value.detail == "Agent missing not found"
        assert isinstance(info.value.body, dict)
        assert info.value.body["instance"] == "/api/v1/agents/missing"

    def test_409(self, client: Client) -> None:
        agent = client.agents.create("a", {})
        integration = client.web_integrations.create(str(agent.agent_id), "web")
        client.web_integrations.create_token(str(integration.integration_id), "dup")
        with pytest.raises(ConflictError) as info:
            client.web_integrations.create_token(str(integration.integration_id), "dup")
        assert info.value.status == 409

    def test_other_statuses_are_plain_api_errors(self, client: Client) -> None:
        with pytest.raises(ApiError) as info:
            client.agents.create("", {})
        assert type(info.value) is ApiError
        assert info.value.status == 400
        assert info.value.detail == "name is required"

    def test_a_non_json_error_body(self, client: Client) -> None:
        # Proxies answer with HTML or text; the status still maps and the text is the detail.
        with pytest.raises(NotFoundError) as info:
            client._http.request("GET", "/no-such-endpoint")
        assert info.value.detail == "404: Not Found"
        assert info.value.body is None

    def test_a_response_of_the_wrong_shape_is_a_protocol_error(
        self, client: Client, emulator: Emulator
    ) -> None:
        with emulator.rest.lock:
            emulator.rest.calls["odd"] = {"callId": "odd", "priority": "high"}
        with pytest.raises(ProtocolError, match="priority"):
            client.calls.get("odd")

    def test_unknown_fields_and_enum_values_are_kept(
        self, client: Client, emulator: Emulator
    ) -> None:
        with emulator.rest.lock:
            emulator.rest.calls["c9"] = {
                "callId": "c9",
                "status": "Teleporting",
                "brandNewField": {"x": 1},
            }
        call = client.calls.get("c9")
        assert call.status == "Teleporting"
        assert not call.finished
        assert call.raw["brandNewField"] == {"x": 1}


class TestRetries:
    def test_503_is_retried_with_backoff(
        self, client: Client, emulator: Emulator, sleeps: List[float]
    ) -> None:
        emulator.rest.fail(503, times=2, path="/agents")
        assert client.agents.list() == []
        assert [r.status for r in emulator.rest.requests_to("/agents")] == [503, 503, 200]
        assert sleeps == [0.001, 0.002]

    @pytest.mark.parametrize("status", [502, 504])
    def test_gateway_errors_are_retried(
        self, client: Client, emulator: Emulator, sleeps: List[float], status: int
    ) -> None:
        emulator.rest.fail(status, path="/misc")
        assert client.misc.concurrency().concurrency == 10
        assert len(sleeps) == 1

    def test_retries_run_out(self, client: Client, emulator: Emulator, sleeps: List[float]) -> None:
        emulator.rest.fail(503, times=None, path="/agents")
        with pytest.raises(ApiError) as info:
            client.agents.list()
        assert info.value.status == 503
        assert len(emulator.rest.requests_to("/agents")) == FAST.max_retries + 1

    def test_429_honours_retry_after(
        self, client: Client, emulator: Emulator, sleeps: List[float]
    ) -> None:
        emulator.rest.fail(429, path="/agents", retry_after=2)
        assert client.agents.list() == []
        assert sleeps == [2.0]

    def test_429_really_waits(self, client: Client, emulator: Emulator) -> None:
        import time

        emulator.rest.fail(429, path="/agents", retry_after=0.2)
        started = time.monotonic()
        client.agents.list()
        assert time.monotonic() - started >= 0.2

    def test_429_with_a_retry_after_too_long_is_raised_at_once(
        self, client: Client, emulator: Emulator, sleeps: List[float]
    ) -> None:
        emulator.rest.fail(429, path="/agents", retry_after=3600)
        with pytest.raises(RateLimitError) as info:
            client.agents.list()
        assert info.value.retry_after == 3600
        assert sleeps == []
        assert len(emulator.rest.requests_to("/agents")) == 1

    def test_a_post_that_creates_calls_is_never_retried(
        self, client: Client, emulator: Emulator, sleeps: List[float]
    ) -> None:
        agent = client.agents.create("a", {})
        emulator.rest.fail(503, path="/calls")
        with pytest.raises(ApiError):
            client.calls.create(str(agent.agent_id), "+15550100")
        emulator.rest.fail(429, path="/calls", retry_after=0)
        with pytest.raises(RateLimitError):
            client.calls.bulk(str(agent.agent_id), [{"endpoint": "+15550100"}])
        assert len(emulator.rest.requests_to("/calls", "POST")) == 2
        assert emulator.rest.calls == {}
        assert sleeps == []

    def test_the_caller_can_opt_in(
        self, client: Client, emulator: Emulator, sleeps: List[float]
    ) -> None:
        agent = client.agents.create("a", {})
        emulator.rest.fail(503, path="/calls")
        call = client.calls.create(str(agent.agent_id), "+15550100", retry=True)
        assert list(emulator.rest.calls) == [call.call_id]
        assert len(sleeps) == 1

    def test_retries_can_be_switched_off(self, emulator: Emulator) -> None:
        emulator.rest.fail(503, path="/agents")
        policy = RetryPolicy(max_retries=0)
        client = Client(api_key=emulator.api_key, base_url=emulator.base_url, retry=policy)
        with pytest.raises(ApiError):
            client.agents.list()

    def test_connection_errors_are_retried_then_raised(self, sleeps: List[float]) -> None:
        client = Client(
            api_key="secret-key-123", base_url=f"http://127.0.0.1:{free_port()}", retry=FAST
        )
        with pytest.raises(ApiConnectionError) as info:
            client.web_integrations.discover("secret-token-456")
        assert isinstance(info.value, ConnectionError)
        assert len(sleeps) == FAST.max_retries
        text = str(info.value)
        assert "secret-token-456" not in text
        assert "secret-key-123" not in text
        assert "/api/v1/web-integrations/discover" in text
        assert info.value.__cause__ is None

    def test_a_slow_answer_times_out(self, emulator: Emulator) -> None:
        emulator.rest.fail(None, path="/misc", delay=0.5)
        policy = RetryPolicy(max_retries=0)
        with (
            Client(
                api_key=emulator.api_key, base_url=emulator.base_url, timeout=0.1, retry=policy
            ) as client,
            pytest.raises(ApiConnectionError, match="timed out"),
        ):
            client.misc.concurrency()

    def test_backoff_schedule(self) -> None:
        policy = RetryPolicy(backoff=0.5, max_backoff=3, jitter=False)
        assert [policy.delay(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1, 2, 3, 3]
        jittery = RetryPolicy(backoff=1)
        assert all(0.5 <= jittery.delay(1) <= 1 for _ in range(50))

    def test_retry_after_forms(self) -> None:
        assert retry_after("3") == 3
        assert retry_after("0.25") == 0.25
        assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0
        assert retry_after("soon") is None
        assert retry_after(None) is None


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> List[float]:
    """A fake monotonic clock for the retry deadline; backoff waits advance it instantly."""
    now = [1000.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    monkeypatch.setattr(rest_http, "_clock", lambda: now[0])
    monkeypatch.setattr(rest_http, "_sleep", sleep)
    return now


class ReadTimeouts(requests.Session):
    """A session whose every request "waits" its whole read timeout on the fake clock, then
    times out: the slow-service case without spending the time."""

    def __init__(self, now: List[float]) -> None:
        super().__init__()
        self.now = now
        self.timeouts: List[Any] = []

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        timeout = kwargs["timeout"]
        self.timeouts.append(timeout)
        self.now[0] += timeout[1] if isinstance(timeout, tuple) else timeout
        raise requests.ReadTimeout(f"Read timed out. (read timeout={timeout})")


class TestTotalTimeout:
    def test_the_default_bounds_read_timeouts_to_a_minute(self, clock: List[float]) -> None:
        session = ReadTimeouts(clock)
        policy = RetryPolicy(jitter=False)  # the defaults, minus randomness
        assert policy.total_timeout == 60
        client = Client(api_key="k-1", base_url="http://127.0.0.1:9", session=session, retry=policy)
        started = clock[0]
        with pytest.raises(ApiConnectionError, match="timed out"):
            client.agents.list()
        # 30 s, a 0.5 s wait, then the rest of the minute; a third attempt could not start.
        assert session.timeouts == [30.0, 29.5]
        assert clock[0] - started == 60.0

    @staticmethod
    def timeouts_of_a_list(clock: List[float], total_timeout: Optional[float]) -> List[Any]:
        """The timeout of each attempt of a ``list()`` whose every attempt times out."""
        session = ReadTimeouts(clock)
        client = Client(
            api_key="k-1",
            base_url="http://127.0.0.1:9",
            session=session,
            retry=RetryPolicy(jitter=False, total_timeout=total_timeout),
            timeout=(5.0, 30.0),
        )
        with pytest.raises(ApiConnectionError):
            client.agents.list()
        return list(session.timeouts)

    def test_without_a_bound_every_retry_gets_the_full_timeout(self, clock: List[float]) -> None:
        assert self.timeouts_of_a_list(clock, None) == [(5.0, 30.0)] * 4

    def test_a_tuple_timeout_is_cut_to_the_time_left(self, clock: List[float]) -> None:
        assert self.timeouts_of_a_list(clock, 40) == [(5.0, 30.0), (5.0, 9.5)]

    def test_no_retry_is_waited_for_past_the_deadline(
        self, emulator: Emulator, clock: List[float]
    ) -> None:
        emulator.rest.fail(503, times=None, path="/agents")
        policy = RetryPolicy(max_retries=10, backoff=10, max_backoff=100, jitter=False)
        bounded = attrs.evolve(policy, total_timeout=25)
        with Client(emulator.api_key, emulator.base_url, retry=bounded) as client:
            started = clock[0]
            with pytest.raises(ApiError) as info:
                client.agents.list()
        assert info.value.status == 503
        # Waits of 10 s and then 20 s: the second would end past 25 s, so it is not taken.
        assert len(emulator.rest.requests_to("/agents")) == 2
        assert clock[0] - started == 10

    def test_a_retry_after_beyond_the_deadline_is_raised_at_once(
        self, emulator: Emulator, clock: List[float]
    ) -> None:
        emulator.rest.fail(429, path="/agents", retry_after=45)
        policy = RetryPolicy(total_timeout=30)
        with (
            Client(emulator.api_key, emulator.base_url, retry=policy) as client,
            pytest.raises(RateLimitError),
        ):
            client.agents.list()
        assert len(emulator.rest.requests_to("/agents")) == 1


class TestRetriedDeletes:
    def test_a_cancel_whose_answer_was_lost_succeeds_on_its_retry(
        self, client: Client, emulator: Emulator, sleeps: List[float]
    ) -> None:
        agent = client.agents.create("a", {})
        call = client.calls.create(str(agent.agent_id), "+15550100")
        # The first DELETE cancels the call, but a gateway answers 504; the retry gets a 409.
        emulator.rest.fail(504, method="DELETE", path="/calls/", processed=True)
        client.calls.cancel(str(call.call_id))
        assert [r.status for r in emulator.rest.requests_to("/calls/", "DELETE")] == [504, 409]
        assert client.calls.get(str(call.call_id)).status == "Canceled"

    def test_a_retried_cancel_of_a_call_that_started_still_fails(
        self, client: Client, emulator: Emulator, sleeps: List[float]
    ) -> None:
        agent = client.agents.create("a", {})
        call = client.calls.create(str(agent.agent_id), "+15550100")
        emulator.rest.advance_call(str(call.call_id))  # Running: cannot be canceled
        emulator.rest.fail(503, method="DELETE", path="/calls/")
        with pytest.raises(ConflictError) as info:
            client.calls.cancel(str(call.call_id))
        assert info.value.earlier_attempt_uncertain
        assert client.calls.get(str(call.call_id)).status == "Running"

    def test_a_conflict_after_a_429_or_on_the_first_attempt_is_raised(
        self, client: Client, emulator: Emulator, sleeps: List[float]
    ) -> None:
        agent = client.agents.create("a", {})
        call = client.calls.create(str(agent.agent_id), "+15550100")
        client.calls.cancel(str(call.call_id))
        with pytest.raises(ConflictError) as info:
            client.calls.cancel(str(call.call_id))  # already canceled, and we know it
        assert not info.value.earlier_attempt_uncertain
        emulator.rest.fail(429, method="DELETE", path="/calls/", retry_after=0)
        with pytest.raises(ConflictError) as info:
            client.calls.cancel(str(call.call_id))  # a 429 means the first try did nothing
        assert not info.value.earlier_attempt_uncertain
        with pytest.raises(NotFoundError):
            client.calls.cancel("no-such-call")

    def test_a_revoke_whose_answer_was_lost_succeeds_on_its_retry(
        self, client: Client, emulator: Emulator, sleeps: List[float]
    ) -> None:
        agent = client.agents.create("a", {})
        integration = client.web_integrations.create(str(agent.agent_id), "web")
        integration_id = str(integration.integration_id)
        token = client.web_integrations.create_token(integration_id, "t1")
        emulator.rest.fail(502, method="DELETE", path="/web-integrations/", processed=True)
        client.web_integrations.revoke_token(integration_id, str(token.token_id))
        statuses = [r.status for r in emulator.rest.requests_to("/web-integrations/", "DELETE")]
        assert statuses == [502, 404]
        assert client.web_integrations.get(integration_id).tokens == []
        with pytest.raises(NotFoundError):
            client.web_integrations.revoke_token(integration_id, str(token.token_id))


class TestSecrets:
    def test_the_key_and_tokens_never_reach_logs_reprs_or_errors(
        self, emulator: Emulator, caplog: pytest.LogCaptureFixture, sleeps: List[float]
    ) -> None:
        caplog.set_level(logging.DEBUG)
        key = emulator.api_key
        client = Client(api_key=key, base_url=emulator.base_url, retry=FAST)
        texts = [repr(client), repr(client.agents), repr(client._http)]
        agent = client.agents.create("a", {"llmConfig": {"apiKey": "sk-llm-secret"}})
        integration = client.web_integrations.create(str(agent.agent_id), "web")
        token = client.web_integrations.create_token(str(integration.integration_id), "t")
        assert token.token
        texts += [repr(agent), repr(token), repr(integration)]
        client.web_integrations.discover(token.token)
        emulator.rest.fail(503, path="/web-integrations/discover")
        client.web_integrations.discover(token.token)
        for failing in (
            lambda: client.agents.get("missing"),
            lambda: client.web_integrations.discover("not-a-token"),
        ):
            with pytest.raises(ApiError) as info:
                failing()
            texts += [str(info.value), repr(info.value)]
        with Client(api_key="bad-" + key, base_url=emulator.base_url) as bad:
            with pytest.raises(ApiError) as info:
                bad.agents.list()
            texts += [str(info.value), repr(info.value), repr(bad)]
        client.close()
        assert "discover" in caplog.text  # the requests were logged ...
        everything = caplog.text + "\n".join(texts)
        assert key not in everything  # ... without the key
        assert token.token not in everything
        assert "sk-llm-secret" not in everything
