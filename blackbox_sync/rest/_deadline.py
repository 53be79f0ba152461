"""Cutting a REST call off at its deadline, even while the server drips bytes.

requests' ``timeout`` bounds each socket read, so a server that sends one byte every few hundred
milliseconds never trips it. The transport arms a :class:`Watchdog` for the whole call (every
attempt, wait and body read); connections opened through :class:`DeadlineAdapter` report to the
watchdog of the thread that sends on them, and when the deadline passes the watchdog shuts their
socket down, which wakes the blocked read at once. This is the one module that reaches into
urllib3's connection classes.
"""

import socket
import threading
import weakref
from typing import Any, Callable, List, Optional

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.response import HTTPResponse

_current = threading.local()
_lock = threading.Lock()
# Which watchdog a pooled connection works for now; a connection changes hands between calls.
_owners: "weakref.WeakKeyDictionary[HTTPConnection, Watchdog]" = weakref.WeakKeyDictionary()

SocketSource = Callable[[], Optional[socket.socket]]


class Watchdog:
    """Shuts the sockets of one REST call down when ``seconds`` have passed (``None``: never).

    Use it as a context manager around the call, on the thread that makes it.
    """

    def __init__(self, seconds: Optional[float]) -> None:
        self.expired = False
        self._sources: List[SocketSource] = []
        self._timer: Optional[threading.Timer] = None
        if seconds is not None:
            self._timer = threading.Timer(max(0.0, seconds), self._expire)
            self._timer.name = "blackbox-rest-deadline"
            self._timer.daemon = True

    def __enter__(self) -> "Watchdog":
        _current.watchdog = self
        if self._timer is not None:
            self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        _current.watchdog = None
        with _lock:
            self._sources.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer.join()

    def track_response(self, response: requests.Response) -> None:
        """Watch the connection a streamed response reads from (any session's adapter)."""
        raw = response.raw
        if isinstance(raw, urllib3.HTTPResponse):
            self._add(lambda: _socket_of(raw.connection))

    def _claim(self, conn: HTTPConnection) -> None:
        with _lock:
            _owners[conn] = self
        self._add(lambda: _socket_of(conn) if _owners.get(conn) is self else None)

    def _add(self, source: SocketSource) -> None:
        with _lock:
            if self._timer is not None:
                self._sources.append(source)
        if self.expired:
            _shut(source())

    def _expire(self) -> None:
        with _lock:
            self.expired = True
            sockets = [source() for source in self._sources]
        for sock in sockets:
            _shut(sock)


def cut_on_this_thread() -> bool:
    """True while this thread's REST call runs past its deadline (its sockets were cut)."""
    watchdog: Optional[Watchdog] = getattr(_current, "watchdog", None)
    return watchdog is not None and watchdog.expired


def _socket_of(conn: Any) -> Optional[socket.socket]:
    sock = conn.sock if isinstance(conn, HTTPConnection) else None
    return sock if isinstance(sock, socket.socket) else None


def _shut(sock: Optional[socket.socket]) -> None:
    if sock is None:
        return
    try:
        # The plain socket's shutdown, also for TLS: it wakes the reader without tearing the
        # TLS object out from under it (SSLSocket.shutdown would).
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: nothing left to cut


def _claim(conn: HTTPConnection) -> None:
    watchdog: Optional[Watchdog] = getattr(_current, "watchdog", None)
    if watchdog is None:
        with _lock:
            _owners.pop(conn, None)
    else:
        watchdog._claim(conn)


class _Connection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _claim(self)
        super().request(*args, **kwargs)

    def getresponse(self) -> HTTPResponse:  # type: ignore[override]  # as urllib3 declares it
        # The deadline may have passed while connecting, when there was no socket to cut yet.
        owner = _owners.get(self)
        if owner is not None and owner.expired:
            _shut(_socket_of(self))
        return super().getresponse()


class _TlsConnection(_Connection, HTTPSConnection):
    pass


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TlsPool(HTTPSConnectionPool):
    ConnectionCls = _TlsConnection


_POOLS = {"http": _Pool, "https": _TlsPool}


class DeadlineAdapter(HTTPAdapter):
    """requests' ``HTTPAdapter`` (same arguments), with connections the REST client can cut at
    its total timeout while a server drips headers. Sessions the client creates use it; mount
    it on your own: ``session.mount("https://", DeadlineAdapter())``."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, urllib3.PoolManager):
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager
