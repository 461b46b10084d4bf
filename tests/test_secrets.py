"""The API key never appears in logs, reprs, exception messages or tracebacks with locals,
on either connector with DEBUG logging on; the environment's key goes to OpenAI only."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio_websocket

from kernl_trio import ConfigurationError, HandshakeFailed
from kernl_trio.model import ConnectOptions
from kernl_trio.protocol import ApiKey
from kernl_trio.providers.openai import OpenAIRealtimeModel
from kernl_trio.transports import (
    Secret,
    WebSocketConnector,
    connect_trio_websocket,
    connect_websockets_sansio,
)

KEY = "sk-test-0123456789abcdefSECRET"

connectors = pytest.mark.parametrize(
    "connector",
    [
        pytest.param(connect_websockets_sansio, id="sansio"),
        pytest.param(connect_trio_websocket, id="trio-websocket"),
    ],
)


async def _server(
    nursery: trio.Nursery,
    handler: Callable[[trio_websocket.WebSocketRequest], Any],
) -> str:
    server = await nursery.start(trio_websocket.serve_websocket, handler, "127.0.0.1", 0, None)
    return f"ws://127.0.0.1:{server.port}/v1/realtime"


def _everything(exc: BaseException) -> str:
    """The exception as every tool might show it: message, repr, traceback with locals."""
    tb = traceback.TracebackException.from_exception(exc, capture_locals=True)
    return "".join(tb.format()) + repr(exc) + str(exc)


@connectors
async def test_the_key_is_sent_but_never_logged(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture, connector: WebSocketConnector
) -> None:
    sent: list[bool] = []  # not the headers themselves: this frame's locals are checked

    async def accept(request: trio_websocket.WebSocketRequest) -> None:
        sent.append((b"authorization", f"Bearer {KEY}".encode()) in request.headers)
        ws = await request.accept()
        await ws.aclose()

    url = await _server(nursery, accept)
    model = OpenAIRealtimeModel(api_key=KEY, base_url=url, connector=connector)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(Exception) as raised:  # the server hangs up before session.created
        async with model.connect() as connection:
            async for _ in connection.events:
                pass
            raise RuntimeError("closed")
    assert sent == [True]  # the key did go on the wire
    assert caplog.records, "DEBUG logging was on: the transports log something"
    assert KEY not in caplog.text
    if connector is connect_websockets_sansio:  # websockets logs every upgrade header
        assert "> Authorization: <redacted>" in caplog.text
    assert KEY not in _everything(raised.value)
    assert KEY not in repr(model)


@connectors
async def test_a_refused_key_stays_out_of_the_error(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture, connector: WebSocketConnector
) -> None:
    async def refuse(request: trio_websocket.WebSocketRequest) -> None:
        await request.reject(401, body=b'{"error": {"message": "Incorrect API key provided"}}')

    url = await _server(nursery, refuse)
    model = OpenAIRealtimeModel(api_key=KEY, base_url=url, connector=connector)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(HandshakeFailed) as raised:
        async with model.connect():
            pass
    assert raised.value.status_code == 401
    assert "Incorrect API key provided" in str(raised.value)
    assert KEY not in _everything(raised.value)
    assert KEY not in caplog.text


def test_secret_reprs_are_redacted() -> None:
    secret = Secret(KEY)
    for shown in (repr(secret), str(secret), f"{secret}", f"{secret!r}", f"{secret:>40}"):
        assert KEY not in shown
    assert secret.reveal() == KEY
    assert KEY not in repr(ApiKey(KEY))
    assert KEY not in repr(ConnectOptions(credential=ApiKey(KEY)))


async def test_the_environment_key_is_not_sent_to_another_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    model = OpenAIRealtimeModel(base_url="wss://proxy.example.net/v1/realtime")
    with pytest.raises(ConfigurationError, match="api_key=") as raised:
        async with model.connect():
            pass
    assert KEY not in _everything(raised.value)
    with pytest.raises(ConfigurationError):
        await model.authenticate()


async def test_the_environment_key_is_not_sent_to_a_local_server(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    seen: list[list[tuple[bytes, bytes]]] = []

    async def accept(request: trio_websocket.WebSocketRequest) -> None:
        seen.append(list(request.headers))
        await (await request.accept()).aclose()

    url = await _server(nursery, accept)
    with pytest.raises(Exception):  # noqa: B017 - only the headers matter here
        async with OpenAIRealtimeModel(base_url=url).connect() as connection:
            async for _ in connection.events:
                pass
            raise RuntimeError("closed")
    assert not any(name == b"authorization" for name, _ in seen[0])


def test_an_explicit_key_goes_where_it_is_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    model = OpenAIRealtimeModel(api_key=KEY, base_url="wss://proxy.example.net/v1/realtime")
    assert model._key() == Secret(KEY)
    openai = OpenAIRealtimeModel()
    assert openai._key() == Secret("sk-env")


@connectors
async def test_a_key_in_an_extra_header_is_not_logged(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture, connector: WebSocketConnector
) -> None:
    """A key the application puts in its own header (``api-key``, as Azure wants) is
    redacted from the transports' logs like ``Authorization``."""
    sent: list[bool] = []

    async def accept(request: trio_websocket.WebSocketRequest) -> None:
        sent.append((b"api-key", KEY.encode()) in request.headers)
        await (await request.accept()).aclose()

    url = await _server(nursery, accept)
    model = OpenAIRealtimeModel(api_key="unused", base_url=url, connector=connector)
    options = ConnectOptions(headers=(("api-key", KEY),))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(RuntimeError):
        async with model.connect(options) as connection:
            async for _ in connection.events:
                pass
            raise RuntimeError("closed")
    assert sent == [True]
    assert KEY not in caplog.text
