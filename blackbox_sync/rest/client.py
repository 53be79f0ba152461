"""``bb.Client``: the REST API of BlackBox behind one ``requests.Session``."""

import os
from typing import TYPE_CHECKING, Any, Mapping, Optional, Tuple, Union

import requests

from blackbox_sync.errors import UsageError
from blackbox_sync.redact import Secret
from blackbox_sync.rest.agents import Agents
from blackbox_sync.rest.call_results import CallResults
from blackbox_sync.rest.calls import Calls
from blackbox_sync.rest.chats import Chats, TextChat
from blackbox_sync.rest.http import (
    MAX_RESPONSE_BYTES,
    HttpTransport,
    InvalidUrlError,
    RetryPolicy,
    shown_url,
)
from blackbox_sync.rest.misc import Misc
from blackbox_sync.rest.web_integrations import WebIntegrations
from blackbox_sync.settings import API_KEY_ENV
from blackbox_sync.urls import base_url_from, check_transport_security

if TYPE_CHECKING:
    from blackbox_sync.conversation.facade import Conversation


class Client:
    """A synchronous client for the BlackBox REST API.

    ``api_key`` and ``base_url`` default to ``BLACKBOX_API_KEY`` and ``BLACKBOX_BASE_URL``
    (then ``https://blackbox.dasha.ai``). ``timeout`` is seconds per attempt (or a requests
    ``(connect, read)`` tuple); ``retry.total_timeout`` bounds the whole call. Pass your own
    ``session`` for proxies or adapters; the client then leaves it open on :meth:`close`
    (mount :class:`~blackbox_sync.rest.DeadlineAdapter` on it so that a server dripping its
    headers is cut at the total timeout). ``retry`` sets how transient failures are retried.
    Plain ``http://`` is refused for any host but this machine unless ``allow_insecure=True``.
    A decoded response body larger than ``max_response_bytes`` (32 MiB) raises
    :class:`~blackbox_sync.rest.ResponseTooLargeError`; an unusable ``base_url`` raises
    :class:`~blackbox_sync.rest.InvalidUrlError`.

    The client keeps no state of its own between requests, so threads may share it for ordinary
    use, the way ``requests.Session`` is commonly shared; for heavy parallel traffic give each
    thread its own client (requests does not formally promise thread safety).
    """

    def __init__(
        self,
        api_key: Optional[str] = None,
        base_url: Optional[str] = None,
        *,
        timeout: Union[float, Tuple[float, float]] = 30.0,
        session: Optional[requests.Session] = None,
        retry: Optional[RetryPolicy] = None,
        headers: Optional[Mapping[str, str]] = None,
        allow_insecure: bool = False,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        key = api_key or os.environ.get(API_KEY_ENV, "")
        if not key.strip():
            raise UsageError(f"no BlackBox API key: pass Client(api_key=...) or set {API_KEY_ENV}")
        self._api_key = Secret(key.strip())
        try:
            url = base_url_from(base_url)
            # The key rides in a header; plain http off this machine would expose it.
            check_transport_security(url, allow_insecure)
        except ValueError as exc:  # urlsplit's words, e.g. "Invalid IPv6 URL"
            raise InvalidUrlError(
                f"invalid base_url {shown_url(base_url or '')!r}: {exc}"
            ) from None
        self._http = HttpTransport(
            self._api_key,
            url,
            timeout=timeout,
            session=session,
            retry=retry,
            headers=headers,
            max_response_bytes=max_response_bytes,
        )
        self.agents = Agents(self._http)
        self.calls = Calls(self._http)
        self.call_results = CallResults(self._http)
        self.web_integrations = WebIntegrations(self._http)
        self.chats = Chats(self._http)
        self.text_chat = TextChat(self._http)
        self.misc = Misc(self._http)

    @property
    def base_url(self) -> str:
        """The service's root URL, e.g. ``https://blackbox.dasha.ai``."""
        return self._http.base_url

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy of this client."""
        return self._http.retry

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r}, api_key={self._api_key!r})"

    def close(self) -> None:
        """Release the HTTP session (unless it was passed in)."""
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def conversation(
        self,
        agent_id: str,
        *,
        call_type: str = "chat",
        additional_data: Optional[Mapping[str, Any]] = None,
        endpoint: Optional[str] = None,
        **kwargs: Any,
    ) -> "Conversation":
        """A :class:`~blackbox_sync.Conversation` on the development endpoint (experimental).

        It authenticates with this client's API key, so use it only where the key is safe
        (scripts, tests, CI). For anything user-facing, mint a token instead::

            token = client.web_integrations.create_token(integration_id, name="web-1")
            bb.Conversation(token=token.token)

        Extra keyword arguments go to :class:`~blackbox_sync.Conversation`.
        """
        # The WebSocket layer is loaded only when a conversation is asked for.
        from blackbox_sync.conversation.facade import Conversation

        return Conversation(
            api_key=self._api_key.reveal(),
            base_url=self.base_url,
            agent_id=agent_id,
            call_type=call_type,
            additional_data=None if additional_data is None else dict(additional_data),
            endpoint=endpoint,
            **kwargs,
        )
