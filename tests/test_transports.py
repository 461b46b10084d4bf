"""Every WebSocket connector keeps the same contract under a real session."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing
import trio_websocket

from kernl_trio import ConnectionLost, HandshakeFailed, RealtimeAgent, open_session
from kernl_trio._websocket import WebSocketConnector, connect_trio_websocket
from kernl_trio._websocket_ws import connect_websockets_sansio, connect_websockets_trio
from kernl_trio.model import ConnectOptions
from kernl_trio.protocol import AudioOutputDelta, ResponseDone, ResponseInterrupted
from kernl_trio.providers.openai import OpenAIRealtimeModel
from kernl_trio.testing import AudioReply, Reply, VirtualChannel

from .helpers import library_tasks, start_server

CONNECTORS = {
    "trio-websocket": connect_trio_websocket,
    "websockets-trio": connect_websockets_trio,
    "websockets-sansio": connect_websockets_sansio,
}
AGENT = RealtimeAgent(id="a", name="A", instructions="x")

connectors = pytest.mark.parametrize("connector", CONNECTORS.values(), ids=CONNECTORS.keys())


def _model(url: str, connector: WebSocketConnector) -> OpenAIRealtimeModel:
    return OpenAIRealtimeModel(base_url=url, connector=connector)


async def _first(stream: Any, kind: type[Any]) -> Any:
    async for event in stream:
        if isinstance(event, kind):
            return event
    raise AssertionError(f"no {kind.__name__}")


@connectors
async def test_audio_out_and_exact_barge_in(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, connector: WebSocketConnector
) -> None:
    server = await start_server(nursery, [Reply.of(AudioReply("story", ms=3000))])
    channel = VirtualChannel()
    async with open_session(AGENT, model=_model(server.url, connector), channel=channel) as s:
        async with s.events() as stream:
            await s.send_message("tell me")
            first = await _first(stream, AudioOutputDelta)
            t0 = trio.current_time()
            await trio.sleep_until(t0 + 1.25)
            await (await server.connection()).speech_started()
            interrupted = await _first(stream, ResponseInterrupted)
    assert interrupted.played_ms == 1250
    truncate = server.connections[0].of_type("conversation.item.truncate")
    assert truncate == [
        {
            "type": "conversation.item.truncate",
            "item_id": first.item_id,
            "content_index": 0,
            "audio_end_ms": 1250,
        }
    ]


@connectors
@pytest.mark.parametrize(
    "ending",
    [
        pytest.param(lambda conn: conn.drop(), id="dropped"),
        pytest.param(lambda conn: conn.close(4000, "beta_api_shape_disabled"), id="closed-4000"),
    ],
)
async def test_server_side_end_is_connection_lost(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    connector: WebSocketConnector,
    ending: Callable[[Any], Any],
) -> None:
    server = await start_server(nursery, [])
    before = library_tasks()
    with pytest.raises(ConnectionLost) as raised:
        async with open_session(AGENT, model=_model(server.url, connector)):
            await ending(await server.connection())
            await trio.sleep_forever()
    assert library_tasks() == before
    if raised.value.code is not None and raised.value.code != 1006:
        assert raised.value.code == 4000


@connectors
async def test_closed_port_is_handshake_failed(connector: WebSocketConnector) -> None:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()
    with pytest.raises(HandshakeFailed):
        async with open_session(AGENT, model=_model(f"ws://127.0.0.1:{port}", connector)):
            pass


@connectors
async def test_refused_upgrade_carries_the_status(
    nursery: trio.Nursery, connector: WebSocketConnector
) -> None:
    async def refuse(request: trio_websocket.WebSocketRequest) -> None:
        await request.reject(403, body=b"forbidden")

    server = await nursery.start(trio_websocket.serve_websocket, refuse, "127.0.0.1", 0, None)
    url = f"ws://127.0.0.1:{server.port}/v1/realtime"
    with pytest.raises(HandshakeFailed) as raised:
        async with open_session(AGENT, model=_model(url, connector)):
            pass
    assert raised.value.status_code == 403


@connectors
async def test_oversized_message_ends_the_session(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, connector: WebSocketConnector
) -> None:
    server = await start_server(nursery, [Reply.of(AudioReply("big", ms=200), chunk_ms=200)])
    options = ConnectOptions(max_message_size=4096)  # one 200 ms delta is ~13 kB of JSON
    model = _model(server.url, connector)
    with pytest.raises(ConnectionLost):
        async with open_session(AGENT, model=model, connect_options=options) as session:
            async with session.events() as stream:
                await session.send_message("hi")
                await _first(stream, ResponseDone)
