"""Small facts about listening sockets shared by the servers: valid ports, printable URLs."""

from __future__ import annotations

import errno
import os
import socket
import urllib.parse

from .errors import ConfigurationError

__all__ = [
    "api_key_missing",
    "bind_error_message",
    "check_port",
    "is_local_url",
    "url_host",
    "ws_url",
]


def check_port(port: int) -> int:
    """``port`` if it is a TCP port (0 picks a free one); else :class:`ConfigurationError`.

    The socket layer would silently bind ``port % 65536`` for a larger number.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigurationError(f"port must be an integer from 0 to 65535, got {port!r}")
    return port


def is_local_url(url: str) -> bool:
    """Whether ``url`` is a server on this machine (which needs no API key)."""
    host = urllib.parse.urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def api_key_missing(url: str | None) -> bool:
    """Whether a model at ``url`` (``None``: OpenAI's) needs ``OPENAI_API_KEY`` and the
    environment has none: what the commands refuse to start without."""
    return not os.environ.get("OPENAI_API_KEY") and not (url is not None and is_local_url(url))


def url_host(host: str) -> str:
    """``host`` as it goes in a URL: an IPv6 address in brackets."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def ws_url(host: str, port: int, path: str = "", *, scheme: str = "ws") -> str:
    """``ws://host:port/path`` with an IPv6 host in brackets."""
    return f"{scheme}://{url_host(host)}:{port}{path}"


def bind_error_message(exc: OSError, host: str, port: int) -> str:
    """What went wrong when listening on ``host``:``port`` failed, in words a user can act on."""
    where = f"{url_host(host)}:{port}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host {host!r} ({exc.strerror or exc}); try 127.0.0.1 or 0.0.0.0"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} is already in use on {host} "
            "(pick another with --port, or stop what uses it)"
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"not allowed to listen on {where} (ports below 1024 need privileges)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: {host} is not an address of this machine"
    return f"cannot listen on {where}: {exc.strerror or exc}"
