"""Every WebSocket connector keeps the same contract under a real session."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing
import trio_websocket
from websockets.frames import Opcode

from kernl_trio import ConnectionLost, HandshakeFailed, RealtimeAgent, open_session
from kernl_trio.model import ConnectOptions
from kernl_trio.protocol import AudioOutputDelta, ResponseDone, ResponseInterrupted
from kernl_trio.providers.openai import OpenAIRealtimeModel
from kernl_trio.testing import AudioReply, Reply, VirtualChannel
from kernl_trio.transports import (
    WebSocketClosed,
    WebSocketConnector,
    connect_trio_websocket,
    connect_websockets_sansio,
)

from .helpers import accept, library_tasks, start_server

CONNECTORS = {
    "trio-websocket": connect_trio_websocket,
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
        await request.reject(401, body=b'{"error": {"message": "Incorrect API key"}}' + b"x" * 9000)

    server = await nursery.start(trio_websocket.serve_websocket, refuse, "127.0.0.1", 0, None)
    url = f"ws://127.0.0.1:{server.port}/v1/realtime"
    with pytest.raises(HandshakeFailed) as raised:
        async with open_session(AGENT, model=_model(url, connector)):
            pass
    assert raised.value.status_code == 401
    body = raised.value.body
    assert body is not None and body.startswith('{"error": {"message": "Incorrect API key"}}')
    assert len(body) == 512  # the first part only
    assert "Incorrect API key" in str(raised.value)


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


async def _listener() -> trio.SocketListener:
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    return listener


@connectors
@pytest.mark.parametrize("answer", ["bad-accept", "hang-up", "garbage"])
async def test_broken_upgrade_is_handshake_failed_at_once(
    nursery: trio.Nursery, connector: WebSocketConnector, answer: str
) -> None:
    listener = await _listener()

    async def serve_one() -> None:
        async with listener:
            stream = await listener.accept()
            async with stream:
                await stream.receive_some(65536)  # the upgrade request
                if answer == "bad-accept":
                    await stream.send_all(
                        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        b"Connection: Upgrade\r\nSec-WebSocket-Accept: bm90IHRoZSBrZXk=\r\n\r\n"
                    )
                elif answer == "garbage":
                    await stream.send_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
                else:
                    return  # hang up
                await trio.sleep(30)  # a wait the client must not sit through

    nursery.start_soon(serve_one)
    port = listener.socket.getsockname()[1]
    connect_timeout = 10.0
    with trio.fail_after(2), pytest.raises(HandshakeFailed) as raised:
        async with connector(f"ws://127.0.0.1:{port}/", [], 2**20, connect_timeout):
            pass
    assert raised.value.status_code is None


@connectors
async def test_receive_batch_contract(nursery: trio.Nursery, connector: WebSocketConnector) -> None:
    """``receive_batch`` returns what has arrived (at least one message, in order) after a
    checkpoint, and raises WebSocketClosed after a checkpoint once the peer has closed."""
    listener = await _listener()
    port = listener.socket.getsockname()[1]
    ready = trio.Event()

    async def serve_one() -> None:
        async with listener:
            peer = await accept(listener)
            async with peer.stream:
                for i in range(5):
                    peer.protocol.send_text(str(i).encode())
                peer.protocol.send_close(4001, "done")
                await peer.flush()
                ready.set()
                with contextlib.suppress(EOFError):
                    while (await peer.next_frame()).opcode is not Opcode.CLOSE:
                        pass  # then hang up, as the closing server

    nursery.start_soon(serve_one)
    with trio.fail_after(5):
        async with connector(f"ws://127.0.0.1:{port}/", [], 2**20, 10.0) as ws:
            await ready.wait()
            received: list[str | bytes] = []
            while len(received) < 5:
                with trio.testing.assert_checkpoints():
                    batch = await ws.receive_batch()
                assert batch
                received += batch
            assert [bytes(m) if isinstance(m, bytes) else m.encode() for m in received] == [
                str(i).encode() for i in range(5)
            ]
            for _ in range(2):
                with trio.testing.assert_checkpoints(), pytest.raises(WebSocketClosed) as closed:
                    await ws.receive_batch()
                assert (closed.value.code, closed.value.reason) == (4001, "done")


@connectors
async def test_send_takes_str_and_bytes_as_text(
    nursery: trio.Nursery, connector: WebSocketConnector
) -> None:
    listener = await _listener()
    port = listener.socket.getsockname()[1]
    frames: list[tuple[object, bytes]] = []
    received = trio.Event()

    async def serve_one() -> None:
        async with listener:
            peer = await accept(listener)
            async with peer.stream:
                await peer.flush()
                for _ in range(2):
                    frame = await peer.next_frame()
                    frames.append((frame.opcode, bytes(frame.data)))
                received.set()

    with trio.fail_after(5):
        async with trio.open_nursery() as inner:
            inner.start_soon(serve_one)
            async with connector(f"ws://127.0.0.1:{port}/", [], 2**20, 10.0) as ws:
                await ws.send('{"a": "é"}')
                await ws.send('{"b": "ü"}'.encode())
                await received.wait()
    assert frames == [(Opcode.TEXT, '{"a": "é"}'.encode()), (Opcode.TEXT, '{"b": "ü"}'.encode())]


@connectors
async def test_a_cancelled_send_sends_nothing(
    nursery: trio.Nursery, connector: WebSocketConnector
) -> None:
    listener = await _listener()
    port = listener.socket.getsockname()[1]
    frames: list[bytes] = []
    received = trio.Event()

    async def serve_one() -> None:
        async with listener:
            peer = await accept(listener)
            async with peer.stream:
                await peer.flush()
                frames.append(await peer.next_message())
                received.set()

    with trio.fail_after(5):
        async with trio.open_nursery() as inner:
            inner.start_soon(serve_one)
            async with connector(f"ws://127.0.0.1:{port}/", [], 2**20, 10.0) as ws:
                with trio.CancelScope() as scope:
                    scope.cancel()
                    await ws.send("never")  # a cancel point before anything is framed
                await ws.send("after")
                await received.wait()
    assert frames == [b"after"]
