"""Where a Conversation connects, and the rule against sending credentials in plain text."""

from typing import Any, Dict

import pytest

import blackbox_sync as bb
from blackbox_sync.redact import Secret, redact_text, redact_url
from blackbox_sync.urls import check_transport_security, websocket_url


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"token": "T"}, "wss://blackbox.dasha.ai/api/v1/ws/webCall?token=T"),
        ({"api_key": "K"}, "wss://blackbox.dasha.ai/api/v1/ws/dev?authorization=K"),
        (
            {"token": "T", "base_url": "https://blackbox.ru.dasha.ai/"},
            "wss://blackbox.ru.dasha.ai/api/v1/ws/webCall?token=T",
        ),
        (
            {"token": "T", "base_url": "http://127.0.0.1:8080/prefix"},
            "ws://127.0.0.1:8080/prefix/api/v1/ws/webCall?token=T",
        ),
        ({"token": "T", "url": "wss://x.example/custom?a=1"}, "wss://x.example/custom?a=1&token=T"),
    ],
)
def test_websocket_url(kwargs: Dict[str, Any], expected: str) -> None:
    assert websocket_url(**kwargs) == expected


def test_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLACKBOX_BASE_URL", "https://eu.example")
    assert websocket_url(token="T").startswith("wss://eu.example/api/v1/ws/webCall")


def test_bad_scheme_is_a_usage_error_without_the_secret() -> None:
    with pytest.raises(bb.UsageError) as info:
        websocket_url(token="T", base_url="ftp://user:pw@host/?token=abc")
    assert "abc" not in str(info.value)
    assert "pw" not in str(info.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.1", "localhost", "[::1]"])
def test_plain_text_to_loopback_is_allowed(host: str) -> None:
    check_transport_security(f"ws://{host}:1/x", allow_insecure=False)


def test_plain_text_off_host_is_refused_unless_allowed() -> None:
    with pytest.raises(bb.UsageError, match="allow_insecure"):
        bb.Conversation(token="T", base_url="http://10.0.0.5:8080")
    bb.Conversation(token="T", base_url="http://10.0.0.5:8080", allow_insecure=True)


def test_conversation_needs_a_credential() -> None:
    with pytest.raises(bb.UsageError, match="token or an API key"):
        bb.Conversation()


def test_redaction() -> None:
    assert redact_url("wss://h/p?token=abc&x=1") == "wss://h/p?token=***&x=1"
    assert redact_url("wss://u:p@h/p?authorization=k") == "wss://***@h/p?authorization=***"
    assert (
        redact_text("Authorization: Bearer abc.def, key k1", "k1")
        == "Authorization: Bearer ***, key ***"
    )
    secret = Secret("abc")
    assert "abc" not in repr(secret) + str(secret)
    assert secret.reveal() == "abc"
