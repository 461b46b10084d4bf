"""``OpenAIRealtimeModel``: connect to the OpenAI Realtime API (GA) or a compatible server."""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from ..._background import in_background
from ..._websocket import WebSocketConnector
from ..._websocket_ws import connect_websockets_sansio
from ...errors import ConfigurationError, HandshakeFailed
from ...model import ConnectOptions
from ...protocol import ClientCredential, EphemeralToken
from .connection import CLOSE_TIMEOUT, OpenAIRealtimeConnection

DEFAULT_URL = "wss://api.openai.com/v1/realtime"


class OpenAIRealtimeModel:
    """A model on the OpenAI Realtime API.

    ``api_key`` falls back to ``OPENAI_API_KEY``. ``base_url`` is the realtime endpoint
    (default ``wss://api.openai.com/v1/realtime``); ``ws://127.0.0.1:PORT`` reaches a local
    server such as :mod:`kernl_trio.testing`'s, which needs no key.

    ``connector`` picks the WebSocket client: the default is ``websockets``' sans-I/O
    protocol driven by the connection's own tasks (the fastest client measured,
    docs/performance.md); ``kernl_trio._websocket_ws.connect_websockets_trio`` (the
    ``websockets`` trio client) and ``kernl_trio._websocket.connect_trio_websocket``
    (trio-websocket) remain supported.
    """

    provider = "openai"
    spec = "1.0"

    def __init__(
        self,
        model_id: str = "gpt-realtime",
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        connector: WebSocketConnector = connect_websockets_sansio,
    ) -> None:
        self._model_id = model_id
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self._base_url = base_url or DEFAULT_URL
        self._connector = connector

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def url(self) -> str:
        """The WebSocket URL, with the ``model`` query parameter."""
        parts = urllib.parse.urlsplit(self._base_url)
        query = urllib.parse.parse_qsl(parts.query)
        if not any(k == "model" for k, _ in query):
            query.append(("model", self._model_id))
        return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))

    def _is_local(self) -> bool:
        host = urllib.parse.urlsplit(self._base_url).hostname or ""
        return host in {"localhost", "::1"} or host.startswith("127.")

    def _credential(self, options: ConnectOptions) -> str | None:
        if options.credential is not None:
            return options.credential.value
        if self._api_key:
            return self._api_key
        if self._is_local():
            return None
        raise ConfigurationError(
            "no OpenAI API key: pass api_key=, set OPENAI_API_KEY, or give a credential"
        )

    @asynccontextmanager
    async def connect(
        self, options: ConnectOptions | None = None
    ) -> AsyncIterator[OpenAIRealtimeConnection]:
        options = options or ConnectOptions()
        headers = list(options.headers)
        secret = self._credential(options)
        if secret is not None:
            headers.insert(0, ("Authorization", f"Bearer {secret}"))
        url = self.url
        async with self._connector(
            url, headers, options.max_message_size, options.connect_timeout
        ) as ws:
            conn = OpenAIRealtimeConnection(
                ws, metadata={"provider": self.provider, "model": self._model_id, "url": url}
            )
            async with in_background(conn.write_loop, conn.aclose):
                yield conn

    async def authenticate(self, *, ttl_seconds: int = 600) -> ClientCredential:
        """Mint an ephemeral client secret (``POST /v1/realtime/client_secrets``)."""
        if not self._api_key:
            raise ConfigurationError("authenticate() needs an API key")
        parts = urllib.parse.urlsplit(self._base_url)
        scheme = {"wss": "https", "ws": "http"}.get(parts.scheme, parts.scheme)
        path = parts.path.rstrip("/").removesuffix("/realtime") + "/realtime/client_secrets"
        endpoint = urllib.parse.urlunsplit((scheme, parts.netloc, path, "", ""))
        body = {
            "expires_after": {"anchor": "created_at", "seconds": ttl_seconds},
            "session": {"type": "realtime", "model": self._model_id},
        }
        request = urllib.request.Request(
            endpoint,
            data=json.dumps(body).encode(),
            headers={
                "Authorization": f"Bearer {self._api_key}",
                "Content-Type": "application/json",
            },
            method="POST",
        )

        def post() -> dict[str, Any]:
            with urllib.request.urlopen(request, timeout=CLOSE_TIMEOUT * 2) as response:
                data: dict[str, Any] = json.loads(response.read())
                return data

        try:
            data = await trio.to_thread.run_sync(post)
        except OSError as exc:
            raise HandshakeFailed(f"client secret request failed: {exc!r}") from None
        if "value" not in data:
            raise HandshakeFailed(f"unexpected client secret response: {data!r}")
        return EphemeralToken(data["value"], data.get("expires_at"))


__all__ = ["OpenAIRealtimeModel"]
