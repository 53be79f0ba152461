"""Agents (PROTOCOL.md §8.1): list, get, create, update (GET-modify-PUT), delete, template."""

from datetime import datetime
from typing import Any, Dict, List, Mapping, Optional, Union

import attrs

from blackbox_sync.protocol.codec import LooseStr
from blackbox_sync.rest._base import Pager, Resource, drop_none, path
from blackbox_sync.rest.model import Model


@attrs.define
class WebhookSettings(Model):
    """Where the service POSTs an event (``config.resultWebhook``, a tool's ``webhook``)."""

    url: Optional[str] = None
    headers: Optional[Dict[str, Any]] = attrs.field(default=None, repr=False)  # may hold secrets


@attrs.define
class AgentTool(Model):
    """A tool the agent may call: a webhook tool, or one the WebSocket client runs."""

    name: Optional[str] = None
    description: Optional[str] = None
    schema: Any = None
    """The JSON schema of the tool's arguments."""
    webhook: Optional[WebhookSettings] = None


@attrs.define
class LlmConfig(Model):
    """``config.llmConfig``; the rest (``apiKey``, ``endpoint``, ...) stays in ``raw``."""

    vendor: Optional[str] = None
    model: Optional[str] = None
    prompt: Optional[str] = None
    options: Optional[Dict[str, Any]] = None


@attrs.define
class AgentConfig(Model):
    """The fields of ``config`` people change most; every other key stays in ``raw`` untouched."""

    primary_language: Optional[str] = None
    llm_config: Optional[LlmConfig] = None
    tts_config: Optional[Dict[str, Any]] = None
    stt_config: Optional[Dict[str, Any]] = None
    features: Optional[Dict[str, Any]] = None
    tools: Optional[List[AgentTool]] = None
    result_webhook: Optional[WebhookSettings] = None
    mcp_connections: Optional[List[Dict[str, Any]]] = None


@attrs.define
class Agent(Model):
    """A conversational agent. Change its attributes and pass it to :meth:`Agents.update`."""

    agent_id: Optional[LooseStr] = None
    name: Optional[str] = None
    config: AgentConfig = attrs.field(factory=AgentConfig)
    is_enabled: Optional[bool] = None
    description: Optional[str] = None
    additional_data: Optional[Dict[str, Any]] = None
    schedule: Optional[Dict[str, Any]] = None
    version: Optional[int] = None
    org_id: Optional[LooseStr] = None
    created_time: Optional[datetime] = None
    last_update_time: Optional[datetime] = None


class Agents(Resource):
    """``client.agents``."""

    def list(self, *, skip: int = 0, take: int = 100) -> List[Agent]:
        """One page of agents."""
        return self._many(Agent, "GET", "/agents", params={"skip": skip, "take": take})

    def iter_all(
        self, *, page_size: int = 100, max_pages: Optional[int] = None
    ) -> "Pager[List[Agent], Agent]":
        """Every agent, fetched lazily ``page_size`` at a time (at most ``max_pages`` pages;
        a repeated page raises :class:`~blackbox_sync.rest.PagingError`)."""
        return Pager(
            lambda n: self.list(skip=n * page_size, take=page_size),
            lambda page: page,
            # A page shorter than asked is the last one; a longer one means paging was ignored.
            lambda page, _: len(page) == page_size,
            max_pages=max_pages,
            what="GET /agents",
        )

    def get(self, agent_id: str) -> Agent:
        """One agent by id (:class:`~blackbox_sync.NotFoundError` if there is none)."""
        return self._one(Agent, "GET", path("/agents/{}", agent_id))

    def template(self) -> Agent:
        """The service's agent template with its defaults (``GET /misc/agent-initial-data``)."""
        return self._one(Agent, "GET", "/misc/agent-initial-data")

    def create(
        self,
        name: str,
        config: Union[AgentConfig, Mapping[str, Any]],
        *,
        is_enabled: Optional[bool] = None,
        description: Optional[str] = None,
        additional_data: Optional[Mapping[str, Any]] = None,
        schedule: Optional[Mapping[str, Any]] = None,
        retry: bool = False,
    ) -> Agent:
        """Create an agent. ``config`` is an :class:`AgentConfig` or the wire (camelCase) dict.

        Not retried unless ``retry=True``: a repeated POST could create two agents.
        """
        wire_config = config.to_wire() if isinstance(config, AgentConfig) else dict(config)
        body = {
            "name": name,
            "config": wire_config,
            **drop_none(
                isEnabled=is_enabled,
                description=description,
                additionalData=additional_data,
                schedule=schedule,
            ),
        }
        return self._one(Agent, "POST", "/agents", body=body, retry=retry)

    def update(
        self,
        agent: Union[str, Agent],
        *,
        name: Optional[str] = None,
        description: Optional[str] = None,
        is_enabled: Optional[bool] = None,
        additional_data: Optional[Mapping[str, Any]] = None,
        schedule: Optional[Mapping[str, Any]] = None,
        config: Optional[Mapping[str, Any]] = None,
    ) -> Agent:
        """Change an agent and PUT the whole object back; returns it with its new ``version``.

        Given an id, the agent is fetched first (GET-modify-PUT); given an :class:`Agent`, that
        object (with any attribute you changed) is sent. ``config`` is a camelCase patch merged
        into the current config (``{"llmConfig": {"prompt": "..."}}``); config keys this library
        does not model travel back untouched. A keyword left ``None`` means "leave as is"; to
        clear a field, set it to ``None`` on the object and pass the object
        (``agent.description = None``, ``agent.config.result_webhook = None``): it is sent as
        ``null``.
        """
        current = self.get(agent) if isinstance(agent, str) else agent
        if current.agent_id is None:
            raise ValueError("the agent has no agent_id; create it first")
        changes = drop_none(
            name=name,
            description=description,
            isEnabled=is_enabled,
            additionalData=additional_data,
            schedule=schedule,
        )
        return self._modify_put(
            current,
            path("/agents/{}", current.agent_id),
            changes=changes,
            patches={"config": config},
        )

    def delete(self, agent_id: str) -> None:
        """Delete an agent (its call history stays)."""
        self._send("DELETE", path("/agents/{}", agent_id))
