"""Server text is untrusted: a peer that echoes the credentials back never gets them shown.

Covers the client half of issue 12 item 1: exception texts and fields, log records at DEBUG, and
the redaction rule itself (whole occurrences, short secrets only as words).
"""

import logging
from typing import Any, Callable, Dict, List

import pytest
from ws_peer import HostileServer, PeerConnection, Script, server_frame

import blackbox_sync as bb
from blackbox_sync.redact import MASK, Secret, redact_json, redact_text

TOKEN = "tok-7f3a9c1e5b2d4f60a8c7e9b1"
API_KEY = "key-0d9e8f7a6b5c4d3e2f1a0b9c"


def echoing_error(secret: str) -> Callable[[PeerConnection], None]:
    """A peer whose `error` frame and close reason quote the credential it was given."""

    def script(peer: PeerConnection) -> None:
        target = peer.read_request()
        peer.send_raw(peer.accept_response())
        peer.recv_json()  # initialize
        message = f"Invalid token {secret} (GET {target})"
        peer.send_json(server_frame("error", data={"message": message, "echo": [secret]}))
        peer.send_close(4001, f"bad credential {secret}")
        peer.wait_client_close()

    return script


def assert_clean(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text
        assert secret[: len(secret) // 2] + secret[len(secret) // 2 :] not in text


@pytest.mark.parametrize(
    ("options", "secret"),
    [({"token": TOKEN}, TOKEN), ({"api_key": API_KEY}, API_KEY)],
    ids=["token", "dev-endpoint-api-key"],
)
def test_an_error_frame_echoing_the_credential_is_redacted_everywhere(
    hostile_ws: Callable[[Script], HostileServer],
    caplog: pytest.LogCaptureFixture,
    options: Dict[str, Any],
    secret: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger="blackbox_sync")
    server = hostile_ws(echoing_error(secret))
    errors: List[BaseException] = []
    conv = bb.Conversation(base_url=server.base_url, allow_insecure=True, **options)
    conv.on_error(errors.append)

    def talk() -> None:
        conv.connect(timeout=5)
        conv.ask("hello", timeout=5)

    with pytest.raises(bb.BlackBoxError) as raised:
        talk()
    conv.close()
    shown = [raised.value, *errors, *conv.errors]
    texts = [str(e) for e in shown] + [repr(e) for e in shown]
    for error in shown:
        texts += [str(getattr(error, name, "")) for name in ("message", "data", "reason")]
    texts.append(str(conv.close_reason))
    texts += [r.getMessage() for r in caplog.records]
    texts += [caplog.text]
    joined = "\n".join(texts)
    assert "Invalid token" in joined  # the server's words are kept, only the secret is masked
    assert MASK in joined
    assert_clean(joined, secret)


def test_short_secrets_are_masked_as_words_not_inside_words() -> None:
    assert (
        redact_text("Max retries exceeded for key x", "x") == f"Max retries exceeded for key {MASK}"
    )
    assert redact_text("(x) token=x&page=2", "x") == f"({MASK}) token={MASK}&page=2"


def test_long_secrets_are_masked_wherever_they_stand_and_percent_encoded() -> None:
    secret = "abc/def+ghi jkl-0123456789"
    text = f"pre{secret}post and ?q=abc%2Fdef%2Bghi%20jkl-0123456789&x=1"
    assert redact_text(text, secret) == f"pre{MASK}post and ?q={MASK}&x=1"


def test_every_secret_the_process_holds_is_masked_without_being_named() -> None:
    held = Secret("minted-token-5e6f7a8b9c0d1e2f")
    assert redact_text("agent said minted-token-5e6f7a8b9c0d1e2f") == f"agent said {MASK}"
    assert held.reveal() not in str(bb.ServerError(f"bad {held.reveal()}"))


def test_credential_parameters_and_bearer_values_are_masked_even_when_unknown() -> None:
    text = "GET /ws?token=zzz&authorization=yyy&page=2 with Authorization: bearer qqq"
    assert redact_text(text) == (
        f"GET /ws?token={MASK}&authorization={MASK}&page=2 with Authorization: bearer {MASK}"
    )


def test_redacting_a_hostile_deep_value_does_not_fail() -> None:
    deep: List[Any] = []
    node = deep
    for _ in range(5000):
        node.append([])
        node = node[0]
    redacted = redact_json({"detail": deep, "token": TOKEN}, TOKEN)
    assert TOKEN not in repr(redacted)[:10000]


def test_a_library_log_record_is_redacted_before_the_application_sees_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    Secret(TOKEN)
    caplog.set_level(logging.DEBUG, logger="blackbox_sync")
    try:
        raise ValueError(f"inner {TOKEN}")
    except ValueError:
        logging.getLogger("blackbox_sync.anything").exception("failed for %s", TOKEN)
    assert TOKEN not in caplog.text
    assert "failed for" in caplog.text
    assert "inner" in caplog.text


def test_a_minted_token_is_masked_from_the_moment_it_is_minted() -> None:
    from blackbox_sync.testing import Emulator

    with Emulator() as emulator, bb.Client(emulator.api_key, base_url=emulator.base_url) as client:
        agent = client.agents.create("Orders", {"primaryLanguage": "en-US"})
        integration = client.web_integrations.create(str(agent.agent_id), "Shop")
        minted = client.web_integrations.create_token(str(integration.integration_id), "m")
    assert minted.token is not None
    assert redact_text(f"the service said {minted.token}") == f"the service said {MASK}"
