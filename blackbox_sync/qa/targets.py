"""Where conversations go: the bundled emulator, or the live service.

A target opens one :class:`~blackbox_sync.Conversation` per attempt. Targets pickle (an executor
may run attempts in other processes) and never show their credentials: ``describe()`` is what
results record, and it holds no secret. A target's ``record_dir``, when set, is where ``webCall``
cases save the agent's audio, one WAV file per turn.
"""

import contextlib
import secrets
import uuid
from typing import Any, Dict, Iterable, Iterator, List, Optional, Protocol, Tuple

import attrs

from blackbox_sync.conversation.facade import Conversation
from blackbox_sync.qa.spec import Suite
from blackbox_sync.redact import redact_url


class Target(Protocol):
    """Opens conversations for the runner."""

    kind: str
    """``emulator`` or ``live`` (latency checks call emulator timings synthetic)."""

    def describe(self) -> Dict[str, Any]:
        """Non-secret facts about the target, written into every result."""

    def conversation(
        self, suite: str, **options: Any
    ) -> "contextlib.AbstractContextManager[Conversation]":
        """A not yet connected conversation for a case of ``suite``; ``options`` go to
        :class:`~blackbox_sync.Conversation` (``additional_data``, ``quiet_period``, ...)."""

    def secrets(self) -> Tuple[str, ...]:
        """Every credential this target used so far (optional): results mask them all."""


def known_secrets(target: Any) -> Tuple[str, ...]:
    """The credentials ``target`` reports through ``secrets()``; none for a custom target that
    has no such method (results still mask ``token=`` values and bearer credentials)."""
    method = getattr(target, "secrets", None)
    return tuple(s for s in method() if s) if callable(method) else ()


@attrs.define
class EmulatorTarget:
    """A running emulator: its base URL and a token per suite (each suite can have its agent)."""

    base_url: str
    token: str = attrs.field(repr=False)
    suite_tokens: Dict[str, str] = attrs.field(factory=dict, repr=False)
    options: Dict[str, Any] = attrs.field(factory=dict)
    """Extra :class:`~blackbox_sync.Conversation` arguments (``close_timeout``, ``headers``...)."""
    record_dir: Optional[str] = None
    """Folder for the agent's audio in ``webCall`` cases (one WAV per turn); ``None``: none."""
    kind: str = "emulator"

    def describe(self) -> Dict[str, Any]:
        return {"kind": self.kind, "base_url": self.base_url}

    def secrets(self) -> Tuple[str, ...]:
        """The default token and every suite's."""
        return (self.token, *self.suite_tokens.values())

    @contextlib.contextmanager
    def conversation(self, suite: str, **options: Any) -> Iterator[Conversation]:
        token = self.suite_tokens.get(suite, self.token)
        yield Conversation(token=token, base_url=self.base_url, **{**self.options, **options})

    @classmethod
    def of(cls, emulator: Any, record_dir: Optional[str] = None) -> "EmulatorTarget":
        """Use a running :class:`~blackbox_sync.testing.Emulator` and its default agent."""
        return cls(base_url=emulator.base_url, token=emulator.token, record_dir=record_dir)


@contextlib.contextmanager
def hosted_emulator(
    suites: Iterable[Suite], agent_file: Optional[str] = None, record_dir: Optional[str] = None
) -> Iterator[EmulatorTarget]:
    """Start an emulator for ``suites``: each suite talks to the agent of its
    ``target.emulator.agent`` file (or ``agent_file``, which wins; or the echo agent). When a
    case is a ``webCall``, the emulator runs in voice mode (if the voice extra is installed)."""
    from blackbox_sync.testing import Emulator, ScriptedAgent

    suites = list(suites)
    agents: Dict[str, Any] = {}
    for suite in suites:
        path = agent_file or suite.emulator_agent
        agents[suite.name] = ScriptedAgent.from_file(path) if path else ScriptedAgent()
    with Emulator(voice=_voice_mode(suites)) as emulator:
        tokens = {}
        for name, agent in agents.items():
            agent_id = f"qa-suite:{name}"
            emulator.set_agent(agent_id, agent)
            tokens[name] = f"qa-{secrets.token_hex(12)}"
            emulator.add_token(tokens[name], agent_id=agent_id)
        yield EmulatorTarget(emulator.base_url, emulator.token, tokens, record_dir=record_dir)


def _voice_mode(suites: List[Suite]) -> Any:
    """An ``EmulatorVoice`` when a case makes voice calls and aiortc is there, else ``None``
    (the voice cases then end as errors that name the missing extra)."""
    if not any(c.settings.call_type == "webCall" for s in suites for c in s.cases):
        return None
    try:
        from blackbox_sync.testing.voice.calls import EmulatorVoice

        return EmulatorVoice()
    except ImportError:
        return None


@attrs.define
class LiveTarget:
    """The live service (or any BlackBox-compatible server).

    Credentials, one of:

    * ``token``: a web integration token, reused for every conversation;
    * ``api_key`` + ``integration_id``: a fresh token is minted for each conversation with
      :meth:`~blackbox_sync.rest.web_integrations.WebIntegrations.create_token` and revoked after;
    * ``api_key`` + ``agent_id``: the development endpoint (experimental).
    """

    base_url: Optional[str] = None
    token: Optional[str] = attrs.field(default=None, repr=False)
    api_key: Optional[str] = attrs.field(default=None, repr=False)
    integration_id: Optional[str] = None
    agent_id: Optional[str] = None
    origin: Optional[str] = None
    options: Dict[str, Any] = attrs.field(factory=dict)
    """Extra :class:`~blackbox_sync.Conversation` arguments (``close_timeout``, ``headers``...)."""
    record_dir: Optional[str] = None
    """Folder for the agent's audio in ``webCall`` cases (one WAV per turn); ``None``: none."""
    kind: str = "live"
    _minted_tokens: List[str] = attrs.field(factory=list, init=False, repr=False, eq=False)
    """Tokens minted in this process, so results mask them after they are revoked too."""

    def __attrs_post_init__(self) -> None:
        if not (self.token or (self.api_key and (self.integration_id or self.agent_id))):
            raise ValueError(
                "a live target needs a token, or an API key with an integration id (tokens are "
                "minted per conversation) or with an agent id (development endpoint)"
            )

    @property
    def mode(self) -> str:
        """``token``, ``minted`` or ``dev``: how conversations authenticate."""
        if self.token:
            return "token"
        return "minted" if self.integration_id else "dev"

    def describe(self) -> Dict[str, Any]:
        facts: Dict[str, Any] = {"kind": self.kind, "auth": self.mode}
        if self.base_url:
            facts["base_url"] = redact_url(self.base_url)
        for key in ("integration_id", "agent_id"):
            if getattr(self, key):
                facts[key] = getattr(self, key)
        return facts

    def secrets(self) -> Tuple[str, ...]:
        """The token, the API key and every token minted so far."""
        return tuple(s for s in (self.token, self.api_key, *self._minted_tokens) if s)

    @contextlib.contextmanager
    def conversation(self, suite: str, **options: Any) -> Iterator[Conversation]:
        options = {**self.options, **options}
        if self.origin:
            options.setdefault("origin", self.origin)
        if self.mode == "token":
            yield Conversation(token=self.token, base_url=self.base_url, **options)
        elif self.mode == "dev":
            yield Conversation(
                api_key=self.api_key, agent_id=self.agent_id, base_url=self.base_url, **options
            )
        else:
            yield from self._minted(options)

    def _minted(self, options: Dict[str, Any]) -> Iterator[Conversation]:
        from blackbox_sync.rest import Client

        assert self.integration_id is not None
        client = Client(api_key=self.api_key, base_url=self.base_url)
        try:
            grant = client.web_integrations.create_token(
                self.integration_id, name=f"qa-{uuid.uuid4().hex[:16]}"
            )
            self._minted_tokens.append(str(grant.token))
            try:
                yield Conversation(token=grant.token, base_url=self.base_url, **options)
            finally:
                with contextlib.suppress(Exception):  # revoking is hygiene, not the test
                    client.web_integrations.revoke_token(self.integration_id, str(grant.token_id))
        finally:
            client.close()
