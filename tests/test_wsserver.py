"""The bridge's WebSocket server (websockets' sans-I/O protocol on trio), frame by frame.

The client is the same sans-I/O protocol on a raw trio stream, so the test decides every
frame: fragments, pings, binary frames, bad UTF-8, an oversized message, the close handshake.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from kernl_trio._websocket import WebSocketClosed
from kernl_trio._wsserver import HttpRequest, ServerWebSocket, WebSocketServer


class Client:
    def __init__(self, stream: trio.SocketStream, protocol: ClientProtocol) -> None:
        self.stream, self.protocol = stream, protocol

    async def flush(self) -> None:
        data = b"".join(self.protocol.data_to_send())
        if data:
            await self.stream.send_all(data)

    async def frames(self) -> list[Frame]:
        """Frames until at least one arrives (or the stream ends)."""
        while True:
            data = await self.stream.receive_some()
            if not data:
                self.protocol.receive_eof()
                return []
            self.protocol.receive_data(data)
            found = [e for e in self.protocol.events_received() if isinstance(e, Frame)]
            if found:
                await self.flush()  # pongs, close replies
                return found


@asynccontextmanager
async def client(port: int, path: str = "/ws") -> AsyncIterator[Client]:
    protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}{path}"), max_size=None)
    protocol.send_request(protocol.connect())
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        peer = Client(stream, protocol)
        await peer.flush()
        while protocol.state is State.CONNECTING:
            protocol.receive_data(await stream.receive_some())
        protocol.events_received()
        yield peer


async def echo_server(
    nursery: trio.Nursery, **kwargs: Any
) -> tuple[WebSocketServer, list[WebSocketClosed]]:
    """A server that echoes each message back as text (binary as its repr); records closes."""
    closes: list[WebSocketClosed] = []

    async def handler(ws: ServerWebSocket) -> None:
        try:
            while True:
                for message in await ws.receive_batch():
                    await ws.send(message if isinstance(message, str) else repr(message))
        except WebSocketClosed as closed:
            closes.append(closed)

    server = WebSocketServer(handler, **kwargs)
    await nursery.start(server.serve, "127.0.0.1", 0)
    return server, closes


async def test_fragments_binary_and_pings(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server, _ = await echo_server(nursery)
    async with client(server.port) as peer:
        peer.protocol.send_text(b"hel", fin=False)
        peer.protocol.send_ping(b"are you there")
        peer.protocol.send_continuation(b"lo", fin=True)
        peer.protocol.send_binary(b"\x00\x01")
        peer.protocol.send_text(b"\xff\xfe")  # not UTF-8: handed over as bytes
        await peer.flush()
        got: list[Frame] = []
        while len(got) < 4:
            got += await peer.frames()
        assert [(f.opcode, bytes(f.data)) for f in got] == [
            (Opcode.PONG, b"are you there"),
            (Opcode.TEXT, b"hello"),
            (Opcode.TEXT, b"b'\\x00\\x01'"),
            (Opcode.TEXT, b"b'\\xff\\xfe'"),
        ]


async def test_an_oversized_message_closes_with_1009(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server, closes = await echo_server(nursery, max_message_size=1000)
    async with client(server.port) as peer:
        peer.protocol.send_text(b"x" * 1001)
        await peer.flush()
        frames = await peer.frames()
        assert frames[0].opcode is Opcode.CLOSE
        assert Close.parse(frames[0].data).code == 1009
    await trio.testing.wait_all_tasks_blocked()
    assert closes[0].code == 1009 and "1000" in (closes[0].reason or "")


async def test_the_peers_close_ends_receive_with_its_code(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server, closes = await echo_server(nursery)
    async with client(server.port) as peer:
        peer.protocol.send_close(1001, "going away")
        await peer.flush()
        frames = await peer.frames()
        assert frames[0].opcode is Opcode.CLOSE  # the server's reply
        assert await peer.stream.receive_some() == b""  # then the server closes TCP
    await trio.testing.wait_all_tasks_blocked()
    assert (closes[0].code, closes[0].reason) == (1001, "going away")
    assert server.connections == 0


async def test_the_gate_answers_plain_requests_and_refuses_upgrades(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    seen: list[HttpRequest] = []

    def gate(request: HttpRequest) -> tuple[int, str] | None:
        seen.append(request)
        if request.path == "/status":
            return 200, "fine\n"
        if request.upgrade and request.header("X-Token") != "yes":
            return 403, "no\n"
        return None

    server, _ = await echo_server(nursery, gate=gate)

    async def get(path: str, headers: str = "") -> bytes:
        async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
            await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
            data = b""
            while b"\r\n\r\n" not in data:  # the status line and headers are enough
                chunk = await stream.receive_some()
                if not chunk:
                    break
                data += chunk
        return data

    assert (await get("/status")).startswith(b"HTTP/1.1 200 OK")
    assert (await get("/other")).startswith(b"HTTP/1.1 400 ")
    upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    upgrade += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    assert (await get("/ws", upgrade)).startswith(b"HTTP/1.1 403 ")
    assert (await get("/ws", upgrade + "X-Token: yes\r\n")).startswith(b"HTTP/1.1 101 ")
    assert [r.upgrade for r in seen] == [False, False, True, True]


async def test_a_silent_client_is_dropped_after_the_handshake_timeout(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server, _ = await echo_server(nursery, handshake_timeout=3.0)
    async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
        began = trio.current_time()
        assert await stream.receive_some() == b""
        assert trio.current_time() - began == 3.0


async def test_stop_accepting_keeps_the_connections_already_open(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server, _ = await echo_server(nursery)
    async with client(server.port) as peer:
        server.stop_accepting()
        await trio.testing.wait_all_tasks_blocked()
        try:
            await trio.open_tcp_stream("127.0.0.1", server.port)
        except OSError:
            pass
        else:  # pragma: no cover
            raise AssertionError("still accepting")
        peer.protocol.send_text(b"still here")
        await peer.flush()
        (frame,) = await peer.frames()
        assert bytes(frame.data) == b"still here"


# -- hostile HTTP before the upgrade: one connection's bytes never stop the server -----------------
async def exchange(port: int, data: bytes) -> tuple[bytes, float]:
    """Send ``data``, read until the server closes: its whole answer and how long it took."""
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        began = trio.current_time()
        await stream.send_all(data)
        answer = b""
        while chunk := await stream.receive_some():
            answer += chunk
        return answer, trio.current_time() - began


def status_gate(request: HttpRequest) -> tuple[int, str] | None:
    return (200, "fine\n") if request.path == "/status" else None


async def test_pipelined_requests_get_one_answer_and_the_server_goes_on(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server, _ = await echo_server(nursery, gate=status_gate)
    get = b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n"
    # two requests in one packet: the protocol fails on the second (not a frame) before the
    # first is answered, which once raised out of the server and ended every connection
    answer, _ = await exchange(server.port, get + get)
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"\r\n\r\nfine\n")
    upgrade = (
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    answer, _ = await exchange(server.port, upgrade + get)
    assert answer.startswith(b"HTTP/1.1 400 ") and b"after the upgrade request" in answer
    # still serving
    assert (await exchange(server.port, get))[0].startswith(b"HTTP/1.1 200 OK")
    async with client(server.port) as peer:
        peer.protocol.send_text(b"alive")
        await peer.flush()
        (frame,) = await peer.frames()
        assert bytes(frame.data) == b"alive"


async def test_a_frame_sent_with_the_upgrade_request_is_not_lost(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server, _ = await echo_server(nursery)
    protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{server.port}/ws"))
    protocol.send_request(protocol.connect())
    early = Frame(Opcode.TEXT, b"early").serialize(mask=True, extensions=[])
    async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
        peer = Client(stream, protocol)
        await stream.send_all(b"".join(protocol.data_to_send()) + early)
        while protocol.state is State.CONNECTING:
            protocol.receive_data(await stream.receive_some())
        frames = [e for e in protocol.events_received() if isinstance(e, Frame)]
        frames = frames or await peer.frames()
        assert bytes(frames[0].data) == b"early"


async def test_what_is_not_a_request_is_answered_at_once(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server, _ = await echo_server(nursery, gate=status_gate, handshake_timeout=10.0)
    cases = {
        b"garbage\r\n\r\n": b"HTTP/1.1 400 ",
        b"GET /status HTTP/1.1\r\nX-Pad: " + b"a" * 20000 + b"\r\n\r\n": b"HTTP/1.1 431 ",
        b"POST /status HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello": b"HTTP/1.1 400 ",
    }
    for data, expected in cases.items():
        answer, took = await exchange(server.port, data)
        assert answer.startswith(expected), (data[:20], answer)
        assert took < 1.0, data[:20]  # not held until the handshake timeout


async def test_head_is_a_bodiless_get_and_other_methods_get_405(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server, _ = await echo_server(nursery, gate=status_gate)
    answer, _ = await exchange(server.port, b"HEAD /status HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"\r\n\r\n")
    assert b"Content-Length: 5\r\n" in answer
    for method in (b"POST", b"PUT", b"DELETE", b"OPTIONS"):
        answer, _ = await exchange(server.port, method + b" /status HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 405 ") and b"Allow: GET, HEAD\r\n" in answer


async def test_a_handler_that_raises_ends_its_connection_only(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def handler(ws: ServerWebSocket) -> None:
        message = await ws.receive()
        if message == "boom":
            raise ValueError("a bug in the handler")
        await ws.send(message)

    server = WebSocketServer(handler)
    await nursery.start(server.serve, "127.0.0.1", 0)
    async with client(server.port) as peer:
        peer.protocol.send_text(b"boom")
        await peer.flush()
        await peer.frames()  # the server closes this one
    async with client(server.port) as peer:
        peer.protocol.send_text(b"fine")
        await peer.flush()
        (frame,) = await peer.frames()
        assert bytes(frame.data) == b"fine"
    (record,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)
