"""A server that goes silent, or stops reading, ends the session with ConnectionLost.

The peer here is a real WebSocket server on 127.0.0.1 (websockets' sans-I/O server protocol
over a trio TCP stream) that answers the opening handshake and ``session.created``, then
misbehaves; every test runs on both connectors. Time is trio's mock clock.
"""

from __future__ import annotations

import contextlib
import copy

import orjson
import pytest
import trio
import trio.testing
from websockets.frames import Frame, Opcode

from kernl_trio import ConnectionLost, RealtimeAgent, open_session
from kernl_trio.limits import (
    CLOSE_TIMEOUT,
    PING_INTERVAL,
    PING_TIMEOUT,
    SEND_STALL_TIMEOUT,
    WATCHDOG_TICK,
)
from kernl_trio.protocol import ResponseDone
from kernl_trio.providers.openai import OpenAIRealtimeModel
from kernl_trio.testing import Reply, TextReply
from kernl_trio.testing.server import DEFAULT_SESSION
from kernl_trio.transports import (
    WebSocketConnector,
    connect_trio_websocket,
    connect_websockets_sansio,
)

from .helpers import accept, library_tasks, start_server

AGENT = RealtimeAgent(id="a", name="A", instructions="x")


class MisbehavingPeer:
    """Accepts one connection, confirms the session, then never writes again.

    ``reads=True``: it keeps reading (and records the frames) but answers nothing, not even
    a ping. ``reads=False``: it stops reading, so the client's writes fill the socket buffers.
    """

    def __init__(self, *, reads: bool) -> None:
        self.reads = reads
        self.frames: list[Frame] = []
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/realtime"

    async def run(self, *, task_status: trio.TaskStatus[MisbehavingPeer]) -> None:
        (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listener.socket.getsockname()[1]
        task_status.started(self)
        async with listener:
            peer = await accept(listener)
            async with peer.stream:
                session = copy.deepcopy(DEFAULT_SESSION) | {"id": "sess_1"}
                created = {"type": "session.created", "event_id": "evt_1", "session": session}
                peer.protocol.send_text(orjson.dumps(created))
                await peer.flush()  # the 101 response and session.created
                await peer.next_frame()  # the client's session.update, confirmed; nothing after
                updated = {"type": "session.updated", "event_id": "evt_2", "session": session}
                peer.protocol.send_text(orjson.dumps(updated))
                await peer.flush()
                if not self.reads:
                    await trio.sleep_forever()
                with contextlib.suppress(EOFError):  # until the client gives up
                    while True:
                        self.frames.append(await peer.next_frame())


CONNECTORS = pytest.mark.parametrize(
    "connector",
    [
        pytest.param(connect_websockets_sansio, id="sansio"),
        pytest.param(connect_trio_websocket, id="trio-websocket"),
    ],
)


@CONNECTORS
async def test_silent_server_is_pinged_then_given_up(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, connector: WebSocketConnector
) -> None:
    peer = await nursery.start(MisbehavingPeer(reads=True).run)
    before = library_tasks()
    opened = 0.0
    model = OpenAIRealtimeModel(base_url=peer.url, connector=connector)
    with pytest.raises(ConnectionLost) as raised:
        async with open_session(AGENT, model=model):
            opened = trio.current_time()
            await trio.sleep_forever()
    lost_after = trio.current_time() - opened
    # the watchdog looks every WATCHDOG_TICK, so each limit is met within two ticks
    assert (
        PING_INTERVAL + PING_TIMEOUT
        <= lost_after
        <= PING_INTERVAL + PING_TIMEOUT + 2 * WATCHDOG_TICK
    )
    pings = [f for f in peer.frames if f.opcode is Opcode.PING]
    assert len(pings) == 1
    assert raised.value.code == 1006
    assert raised.value.reason == "nothing from the peer for 40 s"
    assert library_tasks() - before == set()  # nothing of the session is left


@pytest.mark.parametrize(
    ("connector", "reason"),
    [
        pytest.param(connect_websockets_sansio, "the peer read nothing for 10 s", id="sansio"),
        pytest.param(connect_trio_websocket, None, id="trio-websocket"),
    ],
)
async def test_server_that_stops_reading_ends_the_session(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    connector: WebSocketConnector,
    reason: str | None,
) -> None:
    peer = await nursery.start(MisbehavingPeer(reads=False).run)
    before = library_tasks()
    chunk = bytes(96_000)  # 2 s of 24 kHz PCM16: 128 kB of base64 per message
    opened = 0.0
    model = OpenAIRealtimeModel(base_url=peer.url, connector=connector)
    with pytest.raises(ConnectionLost) as raised:
        async with open_session(AGENT, model=model) as session:
            opened = trio.current_time()
            while True:
                await session.send_audio(chunk)
    # the socket buffers took what they could at once; then one send waited, and gave up
    lost_after = trio.current_time() - opened
    assert SEND_STALL_TIMEOUT <= lost_after <= SEND_STALL_TIMEOUT + 2 * WATCHDOG_TICK
    if reason is not None:
        assert raised.value.reason == reason
    else:  # the connection's own bound, around a socket whose send does not bound itself
        assert str(raised.value) == "the server read nothing for 10 s"
    assert library_tasks() - before == set()  # nothing of the session is left


@CONNECTORS
async def test_idle_but_alive_server_keeps_the_session(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, connector: WebSocketConnector
) -> None:
    server = await start_server(nursery, [Reply.of(TextReply("still here"))])
    model = OpenAIRealtimeModel(base_url=server.url, connector=connector)
    async with open_session(AGENT, model=model) as session:
        await trio.sleep(600)  # ten quiet minutes: the server answers every keepalive ping
        async with session.events() as stream:
            await session.send_message("hello?")
            async for event in stream:
                if isinstance(event, ResponseDone):
                    break
    assert [e["type"] for e in server.connections[0].received] == [
        "session.update",
        "conversation.item.create",
        "response.create",
    ]


@CONNECTORS
@pytest.mark.parametrize("reads", [True, False], ids=["never-answers", "stops-reading"])
async def test_unfinished_close_is_bounded(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    connector: WebSocketConnector,
    reads: bool,
) -> None:
    """A peer that never finishes our close handshake cannot hold the session open."""
    peer = await nursery.start(MisbehavingPeer(reads=reads).run)
    before = library_tasks()
    model = OpenAIRealtimeModel(base_url=peer.url, connector=connector)
    async with open_session(AGENT, model=model):
        await trio.sleep(1)
        leaving = trio.current_time()
    took = trio.current_time() - leaving
    # the connection's own close bound, then the connector's: never unbounded
    assert took <= CLOSE_TIMEOUT + WATCHDOG_TICK
    if reads:
        closes = [f for f in peer.frames if f.opcode is Opcode.CLOSE]
        assert len(closes) == 1  # we did start the close handshake
    assert library_tasks() - before == set()
