"""Web integrations and their tokens (PROTOCOL.md §1, §8.4).

The production way to let a client talk to an agent: create an integration for the agent, mint a
token with the API key on your server, and hand only the token to the client
(``bb.Conversation(token=...)``). A token's value is shown once, when it is minted.
"""

from datetime import datetime
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import attrs

from blackbox_sync.errors import ConflictError, NotFoundError
from blackbox_sync.protocol.codec import KEEP_NONE, LooseStr, unstructure
from blackbox_sync.redact import remember
from blackbox_sync.rest._base import Resource, drop_none, path
from blackbox_sync.rest.model import Model


class Features:
    """Known feature names of a web integration."""

    ALLOW_WEB_CHAT = "AllowWebChat"
    ALLOW_WEB_CALL = "AllowWebCall"
    SEND_CALL_RESULT = "SendCallResult"


@attrs.define
class IntegrationFeature(Model):
    """One feature switch of an integration."""

    name: str = ""
    enabled: bool = True


@attrs.define
class IntegrationToken(Model):
    """A web integration token. ``token`` is set only in the answer to :meth:`create_token`."""

    token_id: LooseStr = LooseStr("")
    name: Optional[str] = None
    token: Optional[str] = attrs.field(default=None, repr=False)  # a credential
    created_at: Optional[datetime] = None
    expires_at: Optional[datetime] = None
    last_used_at: Optional[datetime] = None


@attrs.define
class WebIntegration(Model):
    """A web integration: which agent, which features, which origins, which client-side tools."""

    integration_id: LooseStr = LooseStr("")
    agent_id: Optional[LooseStr] = None
    name: Optional[str] = None
    enabled: Optional[bool] = None
    features: Optional[List[IntegrationFeature]] = None
    widget_appearance: Optional[Dict[str, Any]] = None
    description: Optional[str] = None
    origins: Optional[List[str]] = None
    tools: Optional[List[str]] = None
    """Names of agent tools that run on the WebSocket client instead of a webhook."""
    tokens: Optional[List[IntegrationToken]] = attrs.field(default=None, repr=False)
    org_id: Optional[LooseStr] = None
    created_time: Optional[datetime] = None
    last_update_time: Optional[datetime] = None

    def feature(self, name: str) -> bool:
        """Whether feature ``name`` (see :class:`Features`) is switched on."""
        return any(f.name == name and f.enabled for f in self.features or ())


@attrs.define
class IntegrationDiscovery(Model):
    """What ``discover?token=`` tells a client about the integration behind a token."""

    integration_id: Optional[LooseStr] = None
    agent_id: Optional[LooseStr] = None
    name: Optional[str] = None
    enabled: Optional[bool] = None
    features: Optional[List[IntegrationFeature]] = None
    widget_appearance: Optional[Dict[str, Any]] = None


@attrs.define
class _TokenRequest:
    name: str
    expires_at: Optional[datetime] = attrs.field(default=None, metadata={KEEP_NONE: True})


FeatureSpec = Union[Sequence[str], Mapping[str, bool], Sequence[IntegrationFeature]]
DEFAULT_FEATURES = (Features.ALLOW_WEB_CHAT, Features.ALLOW_WEB_CALL)
# The live service requires `widgetAppearance`; this is what a working live script sent.
DEFAULT_WIDGET = {"theme": "dark"}
# Fields the service sets itself; not sent back on PUT (and tokens never travel back).
_READ_ONLY = ("tokens", "integrationId", "orgId", "createdTime", "lastUpdateTime")


def _features(spec: FeatureSpec) -> List[Dict[str, Any]]:
    if isinstance(spec, Mapping):
        return [{"name": name, "enabled": bool(on)} for name, on in spec.items()]
    out: List[Dict[str, Any]] = []
    for item in spec:
        if isinstance(item, IntegrationFeature):
            out.append({**item.raw, "name": item.name, "enabled": item.enabled})
        else:
            out.append({"name": item, "enabled": True})
    return out


class WebIntegrations(Resource):
    """``client.web_integrations``."""

    def list(self) -> List[WebIntegration]:
        """Every web integration of the organisation."""
        return self._many(WebIntegration, "GET", "/web-integrations")

    def get(self, integration_id: str) -> WebIntegration:
        """One integration by id."""
        return self._one(
            WebIntegration,
            "GET",
            "/web-integrations/integration",
            params={"integrationId": integration_id},
        )

    def create(
        self,
        agent_id: str,
        name: str,
        *,
        enabled: bool = True,
        features: FeatureSpec = DEFAULT_FEATURES,
        origins: Optional[Sequence[str]] = None,
        tools: Optional[Sequence[str]] = None,
        description: Optional[str] = None,
        widget_appearance: Optional[Mapping[str, Any]] = None,
        retry: bool = False,
    ) -> WebIntegration:
        """Create an integration for ``agent_id``.

        ``name``: 1–100 characters of letters, digits, ``-``, ``_`` and spaces. ``features``: names
        to switch on, or ``{name: bool}``. ``tools``: agent tools the WebSocket client runs.
        """
        body = {
            "agentId": agent_id,
            "name": name,
            "enabled": enabled,
            "features": _features(features),
            "widgetAppearance": dict(widget_appearance or DEFAULT_WIDGET),
            **drop_none(
                origins=None if origins is None else list(origins),
                tools=None if tools is None else list(tools),
                description=description,
            ),
        }
        return self._one(WebIntegration, "POST", "/web-integrations", body=body, retry=retry)

    def update(
        self,
        integration: Union[str, WebIntegration],
        *,
        name: Optional[str] = None,
        enabled: Optional[bool] = None,
        features: Optional[FeatureSpec] = None,
        origins: Optional[Sequence[str]] = None,
        tools: Optional[Sequence[str]] = None,
        description: Optional[str] = None,
        widget_appearance: Optional[Mapping[str, Any]] = None,
    ) -> WebIntegration:
        """Change an integration: GET it (unless given), apply the changes, PUT the whole body.

        A keyword left ``None`` means "leave as is"; pass ``[]`` to empty ``origins`` or
        ``tools``. To clear a field, set it to ``None`` on the object and pass the object
        (``integration.description = None``): it is sent as ``null``.
        """
        current = self.get(integration) if isinstance(integration, str) else integration
        changes = drop_none(
            name=name,
            enabled=enabled,
            features=None if features is None else _features(features),
            origins=None if origins is None else list(origins),
            tools=None if tools is None else list(tools),
            description=description,
            widgetAppearance=None if widget_appearance is None else dict(widget_appearance),
        )
        return self._modify_put(
            current,
            "/web-integrations",
            params={"integrationId": current.integration_id},
            changes=changes,
            read_only=_READ_ONLY,
        )

    def create_token(
        self, integration_id: str, name: str, *, expires_at: Optional[datetime] = None
    ) -> IntegrationToken:
        """Mint a token for ``bb.Conversation(token=...)``; its value is only in this answer.

        ``name`` must be unique within the integration (:class:`~blackbox_sync.ConflictError`
        otherwise). Not retried: a repeat after a lost answer would hit that conflict.
        """
        body = unstructure(_TokenRequest(name=name, expires_at=expires_at))
        minted = self._one(
            IntegrationToken, "POST", path("/web-integrations/{}/tokens", integration_id), body=body
        )
        remember(minted.token)  # from now on masked in every text the library shows
        return minted

    def revoke_token(self, integration_id: str, token_id: str) -> None:
        """Revoke a token; conversations can no longer start with it.

        DELETE is retried on transient failures, and an attempt that timed out may still have
        revoked the token; its retry then gets a 404 or 409. That answer counts as success
        when the token is gone (a 409 is checked against the integration's token list).
        """
        try:
            self._send("DELETE", path("/web-integrations/{}/tokens/{}", integration_id, token_id))
        except (NotFoundError, ConflictError) as exc:
            if not exc.earlier_attempt_uncertain:
                raise
            if isinstance(exc, ConflictError):
                listed = self.get(integration_id).tokens or []
                if any(str(t.token_id) == str(token_id) for t in listed):
                    raise

    def discover(self, token: str) -> IntegrationDiscovery:
        """Look up the integration behind a token (the public endpoint widgets use)."""
        remember(token)
        return self._one(
            IntegrationDiscovery, "GET", "/web-integrations/discover", params={"token": token}
        )
