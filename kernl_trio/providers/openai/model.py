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
from ..._secret import Secret
from ...errors import ConfigurationError, HandshakeFailed
from ...limits import HTTP_TIMEOUT
from ...model import ConnectOptions
from ...protocol import ClientCredential, EphemeralToken
from ...transports import DEFAULT_CONNECTOR, Header, WebSocketConnector
from .connection import OpenAIRealtimeConnection

DEFAULT_URL = "wss://api.openai.com/v1/realtime"


def _is_openai_host(host: str) -> bool:
    return host == "openai.com" or host.endswith(".openai.com")


class OpenAIRealtimeModel:
    """A model on the OpenAI Realtime API.

    ``base_url`` is the realtime endpoint (default ``wss://api.openai.com/v1/realtime``);
    ``ws://127.0.0.1:PORT`` reaches a local server such as :mod:`kernl_trio.testing`'s,
    which needs no key.

    ``api_key`` is sent to ``base_url`` whatever its host. Without it, the key in
    ``OPENAI_API_KEY`` is used for OpenAI's own hosts (``*.openai.com``) only: for another
    remote host (a proxy, another provider), pass ``api_key=`` or a credential in
    :class:`~kernl_trio.model.ConnectOptions`. Keys are held as
    :class:`~kernl_trio.transports.Secret`, so no repr, log line or traceback shows them.

    ``connector`` picks the WebSocket client (:mod:`kernl_trio.transports`): the default
    is ``connect_websockets_sansio``, ``websockets``' sans-I/O protocol driven by the
    connection's own tasks; ``connect_trio_websocket`` (trio-websocket) is the other.
    """

    provider = "openai"
    spec = "1.0"

    def __init__(
        self,
        model_id: str = "gpt-realtime",
        *,
        api_key: str | Secret | None = None,
        base_url: str | None = None,
        connector: WebSocketConnector = DEFAULT_CONNECTOR,
    ) -> None:
        self._model_id = model_id
        self._base_url = base_url or DEFAULT_URL
        self._connector = connector
        self._api_key: Secret | None = None
        self._env_key = False  # the key came from OPENAI_API_KEY, not from the caller
        if api_key is not None:
            self._api_key = Secret(api_key) if api_key else None
        elif os.environ.get("OPENAI_API_KEY"):
            self._api_key = Secret(os.environ["OPENAI_API_KEY"])
            self._env_key = True

    def __repr__(self) -> str:
        return f"OpenAIRealtimeModel({self._model_id!r}, base_url={self._base_url!r})"

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

    def _host(self) -> str:
        return urllib.parse.urlsplit(self._base_url).hostname or ""

    def _is_local(self) -> bool:
        host = self._host()
        return host in {"localhost", "::1"} or host.startswith("127.")

    def _key(self) -> Secret | None:
        """The API key this model may send to its ``base_url``."""
        if self._api_key is None or (self._env_key and not _is_openai_host(self._host())):
            return None
        return self._api_key

    def _credential(self, options: ConnectOptions) -> Secret | None:
        if options.credential is not None:
            return Secret(options.credential.value)
        key = self._key()
        if key is not None:
            return key
        if self._is_local():
            return None
        if self._api_key is not None:  # only the environment's key, and not an OpenAI host
            raise ConfigurationError(
                f"OPENAI_API_KEY is sent only to OpenAI's hosts, not to {self._host()}: "
                "pass api_key= (or a credential) to send a key there"
            )
        raise ConfigurationError(
            "no OpenAI API key: pass api_key=, set OPENAI_API_KEY, or give a credential"
        )

    def _headers(self, options: ConnectOptions) -> list[Header]:
        headers: list[Header] = list(options.headers)
        secret = self._credential(options)
        if secret is not None:
            headers.insert(0, ("Authorization", Secret("Bearer " + secret.reveal())))
        return headers

    @asynccontextmanager
    async def connect(
        self, options: ConnectOptions | None = None
    ) -> AsyncIterator[OpenAIRealtimeConnection]:
        options = options or ConnectOptions()
        url = self.url
        async with self._connector(
            url, self._headers(options), options.max_message_size, options.connect_timeout
        ) as ws:
            conn = OpenAIRealtimeConnection(
                ws, metadata={"provider": self.provider, "model": self._model_id, "url": url}
            )
            async with in_background(conn.write_loop, conn.aclose):
                yield conn

    async def authenticate(self, *, ttl_seconds: int = 600) -> ClientCredential:
        """Mint an ephemeral client secret (``POST /v1/realtime/client_secrets``)."""
        key = self._key()
        if key is None:
            raise ConfigurationError(
                "authenticate() needs an API key (OPENAI_API_KEY is sent only to OpenAI's hosts)"
            )
        parts = urllib.parse.urlsplit(self._base_url)
        scheme = {"wss": "https", "ws": "http"}.get(parts.scheme, parts.scheme)
        path = parts.path.rstrip("/").removesuffix("/realtime") + "/realtime/client_secrets"
        endpoint = urllib.parse.urlunsplit((scheme, parts.netloc, path, "", ""))
        body = {
            "expires_after": {"anchor": "created_at", "seconds": ttl_seconds},
            "session": {"type": "realtime", "model": self._model_id},
        }

        def post() -> dict[str, Any]:
            request = urllib.request.Request(endpoint, data=json.dumps(body).encode())
            request.add_header("Content-Type", "application/json")
            request.add_header("Authorization", "Bearer " + key.reveal())  # at the last moment
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
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
