"""The exception tree drawn in blackbox_sync/errors.py: every relation it documents, and that
every exception class the package defines derives from BlackBoxError."""

import importlib
import pkgutil
from typing import List, Tuple, Type

import pytest

import blackbox_sync as bb
import blackbox_sync.rest as bb_rest
import blackbox_sync.rest.http as rest_http
from blackbox_sync import errors
from blackbox_sync.conversation.tools import ToolArgumentsError
from blackbox_sync.qa.assertions import InfraError
from blackbox_sync.qa.refs import RefError
from blackbox_sync.qa.sources import SuiteFileError
from blackbox_sync.qa.stopping import StoppedError
from blackbox_sync.qa.templates import TemplateError
from blackbox_sync.qa.voicecall import VoiceUnavailable
from blackbox_sync.rest import PagingError
from blackbox_sync.voice import SdpError, VoiceError, VoiceTimeout

Relation = Tuple[type, type]

IS_A: List[Relation] = [
    (errors.UsageError, RuntimeError),
    (errors.ConnectionClosedError, ConnectionError),
    (errors.HandshakeRefused, errors.ConnectionClosedError),
    (errors.RedirectRefused, errors.ConnectionClosedError),
    (errors.OperationTimeout, TimeoutError),
    (bb.AskTimeout, errors.OperationTimeout),
    (errors.ServerAuthenticationError, errors.ServerError),
    (errors.ServerAuthenticationError, errors.AuthenticationError),
    (errors.ApiAuthenticationError, errors.ApiError),
    (errors.ApiAuthenticationError, errors.AuthenticationError),
    (errors.NotFoundError, errors.ApiError),
    (errors.ConflictError, errors.ApiError),
    (errors.RateLimitError, errors.ApiError),
    (errors.ApiRedirectError, errors.ApiError),
    (errors.ApiConnectionError, ConnectionError),
    (errors.ApiTimeoutError, errors.ApiConnectionError),
    (errors.ApiTimeoutError, TimeoutError),
    (errors.ApiResponseError, errors.ApiConnectionError),
    (errors.ResponseTooLargeError, errors.ApiResponseError),
    (errors.InvalidUrlError, errors.ApiConnectionError),
    (errors.InvalidUrlError, ValueError),
    (PagingError, errors.ProtocolError),
    (VoiceTimeout, VoiceError),
    (VoiceTimeout, errors.OperationTimeout),
    (SdpError, VoiceError),
    (SdpError, ValueError),
    (ToolArgumentsError, ValueError),
    (SuiteFileError, ValueError),
    (RefError, ValueError),
    (TemplateError, KeyError),
    (StoppedError, RuntimeError),
]

# REST errors stand apart from `error`-frame errors and from the socket's.
IS_NOT_A: List[Relation] = [
    (errors.ApiAuthenticationError, errors.ServerError),
    (errors.AuthenticationError, errors.ServerError),
    (errors.ServerAuthenticationError, errors.ApiError),
    (errors.ApiError, errors.ServerError),
    (errors.ServerError, errors.ApiError),
    (errors.ApiConnectionError, errors.ConnectionClosedError),
    (errors.ApiConnectionError, errors.ApiError),
    (errors.UsageError, errors.AuthenticationError),
]


@pytest.mark.parametrize(("child", "parent"), IS_A, ids=lambda c: c.__name__)
def test_documented_relations_hold(child: type, parent: type) -> None:
    assert issubclass(child, parent)
    assert issubclass(child, bb.BlackBoxError)


@pytest.mark.parametrize(("child", "other"), IS_NOT_A, ids=lambda c: c.__name__)
def test_rest_and_frame_errors_stay_apart(child: type, other: type) -> None:
    assert not issubclass(child, other)


def _package_exceptions() -> List[Type[BaseException]]:
    found: List[Type[BaseException]] = []
    for info in pkgutil.walk_packages(bb.__path__, "blackbox_sync."):
        if ".testing" in info.name or info.name.endswith("__main__"):
            continue  # the emulator's own control flow never reaches a client's caller
        try:
            module = importlib.import_module(info.name)
        except ImportError as exc:
            if exc.name and not exc.name.startswith("blackbox_sync"):
                continue  # an optional extra this Python lacks (voice on 3.9)
            raise
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Exception)  # RunInterrupted is a KeyboardInterrupt
                and value.__module__ == module.__name__
                and not value.__name__.startswith("_")
            ):
                found.append(value)
    return found


def test_every_public_exception_of_the_package_is_a_blackbox_error() -> None:
    found = _package_exceptions()
    assert len(found) > 30
    assert [e.__name__ for e in found if not issubclass(e, bb.BlackBoxError)] == []


def test_a_rest_401_is_caught_as_authentication_not_as_a_server_error() -> None:
    raised = errors.ApiAuthenticationError(401, "Unauthorized", "Invalid API key")
    with pytest.raises(bb.AuthenticationError):
        raise raised
    assert not isinstance(raised, bb.ServerError)
    assert raised.message == "HTTP 401 Unauthorized: Invalid API key"


def test_a_refusing_error_frame_is_a_server_error_and_an_authentication_error() -> None:
    error = errors.server_error_for("Invalid token", {"message": "Invalid token"})
    assert type(error) is errors.ServerAuthenticationError
    assert isinstance(error, bb.ServerError)
    assert isinstance(error, bb.AuthenticationError)
    assert type(errors.server_error_for("LLM provider failed")) is errors.ServerError


def test_the_rest_connection_errors_keep_their_public_paths() -> None:
    for name in ("ApiConnectionError", "ApiTimeoutError", "InvalidUrlError", "ApiRedirectError"):
        assert getattr(bb_rest, name) is getattr(errors, name)
        assert getattr(rest_http, name) is getattr(errors, name)
    assert bb.ApiConnectionError is errors.ApiConnectionError


def test_the_tree_is_drawn_in_the_module_docstring() -> None:
    doc = errors.__doc__ or ""
    for name in errors.__dict__:
        value = getattr(errors, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            assert name in doc, f"{name} is missing from the drawn tree"
    assert VoiceUnavailable.__name__ in doc
    assert InfraError.__name__ in doc
