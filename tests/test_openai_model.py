"""OpenAIRealtimeModel: URL, credentials, and minting ephemeral keys over HTTP."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from kernl_trio.errors import ConfigurationError
from kernl_trio.protocol import EphemeralToken
from kernl_trio.providers.openai import OpenAIRealtimeModel


class _Handler(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, dict[str, str], dict[str, Any]]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append((self.path, dict(self.headers), body))
        reply = json.dumps({"value": "ek_test123", "expires_at": 1756324625, "session": {}})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(reply.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_port() -> Iterator[int]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    # shutdown() waits for the loop's next poll: poll often, not every half second
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join()


async def test_authenticate_mints_an_ephemeral_key(http_port: int) -> None:
    model = OpenAIRealtimeModel(
        "gpt-realtime", api_key="sk-live", base_url=f"ws://127.0.0.1:{http_port}/v1/realtime"
    )
    token = await model.authenticate(ttl_seconds=120)
    assert token == EphemeralToken("ek_test123", 1756324625)
    path, headers, body = _Handler.seen[-1]
    assert path == "/v1/realtime/client_secrets"
    assert headers["Authorization"] == "Bearer sk-live"
    assert body == {
        "expires_after": {"anchor": "created_at", "seconds": 120},
        "session": {"type": "realtime", "model": "gpt-realtime"},
    }


def test_url_keeps_given_query_and_adds_model() -> None:
    model = OpenAIRealtimeModel("gpt-realtime-mini", api_key="k")
    assert model.url == "wss://api.openai.com/v1/realtime?model=gpt-realtime-mini"
    local = OpenAIRealtimeModel("m", base_url="ws://127.0.0.1:1/v1/realtime?model=other")
    assert local.url == "ws://127.0.0.1:1/v1/realtime?model=other"


async def test_remote_server_without_key_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    model = OpenAIRealtimeModel("gpt-realtime")
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        async with model.connect():
            pass
