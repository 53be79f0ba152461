"""Which local addresses ICE may gather host candidates on.

aioice gathers on every interface and offers no option to choose, while a test against the local
emulator must keep its traffic on loopback (and aioice leaves 127.0.0.1 out by default). So its
module-level ``get_host_addresses`` is wrapped, once, by a function that reads a context
variable: code that sets it (inside its own asyncio task, whose context is a copy) gathers on the
addresses it named; everyone else gets aioice's own answer, unchanged.
"""

import contextvars
import ipaddress
import threading
from typing import Any, Callable, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

LOOPBACK: Tuple[str, ...] = ("127.0.0.1",)

_ADDRESSES: "contextvars.ContextVar[Optional[Tuple[str, ...]]]" = contextvars.ContextVar(
    "blackbox_sync_ice_addresses", default=None
)
_install_lock = threading.Lock()


def install() -> None:
    """Wrap aioice's address lookup (idempotent, thread-safe)."""
    from aioice import ice

    with _install_lock:
        original: Callable[..., List[str]] = ice.get_host_addresses
        if getattr(original, "_blackbox_sync", False):
            return

        def host_addresses(use_ipv4: bool, use_ipv6: bool) -> List[str]:
            chosen = _ADDRESSES.get()
            if chosen is None:
                return original(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
            return [
                a
                for a in chosen
                if (use_ipv4 if ipaddress.ip_address(a).version == 4 else use_ipv6)
            ]

        wrapper: Any = host_addresses
        wrapper._blackbox_sync = True
        ice.get_host_addresses = wrapper


def restrict(addresses: Optional[Sequence[str]]) -> None:
    """Gather only on ``addresses`` in the current context (``None``: every interface)."""
    if addresses is not None:
        install()
        _ADDRESSES.set(tuple(addresses))
    else:
        _ADDRESSES.set(None)


def is_loopback_url(url: str) -> bool:
    """True when ``url``'s host is this machine's loopback (``localhost``, 127.x, ``::1``)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
