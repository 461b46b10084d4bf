"""The sans-I/O connector (``connect_websockets_sansio``) against real servers on 127.0.0.1.

Two kinds of server: websockets' own trio server, for ordinary exchanges, and a hand-rolled one
on websockets' sans-I/O ``ServerProtocol`` (:class:`RawPeer`), which writes exactly the frames,
and the TCP writes, a test asks for: fragments, pings, a close never answered, a socket dropped
without a close frame.
"""

from __future__ import annotations

import functools
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.trio.server import Server, ServerConnection, serve

from kernl_trio.errors import HandshakeFailed
from kernl_trio.limits import CLOSE_TIMEOUT, WATCHDOG_TICK
from kernl_trio.transports import WebSocket, WebSocketClosed, connect_websockets_sansio
from kernl_trio.transports._sansio import _send_whole

from .helpers import RawPeer, accept

MAX_SIZE = 2**20
CONNECT_TIMEOUT = 10.0


# -- servers ---------------------------------------------------------------------------------------


def _url(port: int, path: str = "/") -> str:
    return f"ws://127.0.0.1:{port}{path}"


async def start_server(
    nursery: trio.Nursery,
    handler: Callable[[ServerConnection], Awaitable[None]],
    **options: Any,
) -> str:
    """websockets' trio server on a free port; returns its URL."""
    server: Server = await nursery.start(
        functools.partial(
            serve, handler, 0, host="127.0.0.1", compression=None, ping_interval=None, **options
        )
    )
    return _url(server.listeners[0].socket.getsockname()[1])


async def echo(conn: ServerConnection) -> None:
    async for message in conn:
        await conn.send(message)


@pytest.fixture
async def listener() -> AsyncIterator[trio.SocketListener]:
    (tcp_listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with tcp_listener:
        yield tcp_listener


def _port(listener: trio.SocketListener) -> int:
    port: int = listener.socket.getsockname()[1]
    return port


@asynccontextmanager
async def raw_pair(
    listener: trio.SocketListener,
    *,
    headers: Sequence[tuple[str, str]] = (),
    path: str = "/",
    max_message_size: int = MAX_SIZE,
) -> AsyncIterator[tuple[WebSocket, RawPeer]]:
    """The client connected to a :class:`RawPeer`; on exit the peer's socket closes first."""
    peers: list[RawPeer] = []
    served = trio.Event()

    async def serve_one() -> None:
        peer = await accept(listener)
        await peer.flush()
        peers.append(peer)
        served.set()

    url = _url(_port(listener), path)
    async with AsyncExitStack() as stack:
        # The connector runs a task of its own: its nursery must nest inside this one.
        nursery = await stack.enter_async_context(trio.open_nursery())
        nursery.start_soon(serve_one)
        ws = await stack.enter_async_context(
            connect_websockets_sansio(url, headers, max_message_size, CONNECT_TIMEOUT)
        )
        await served.wait()
        (peer,) = peers
        stack.push_async_callback(trio.aclose_forcefully, peer.stream)
        yield ws, peer


def _code_reason(exc: WebSocketClosed) -> tuple[int | None, str | None]:
    return exc.code, exc.reason  # attrs leaves exceptions compared by identity


def _close_of(frame: Frame) -> Close:
    assert frame.opcode is Opcode.CLOSE, frame
    return Close.parse(bytes(frame.data))


# -- messages --------------------------------------------------------------------------------------


async def test_text_round_trip_returns_the_exact_utf8_bytes(nursery: trio.Nursery) -> None:
    url = await start_server(nursery, echo)
    texts = ["hello", "héllo ✓ 🎤", "", '{"type":"x"}', "é" * 40_000]
    with trio.fail_after(5):
        async with connect_websockets_sansio(url, [], MAX_SIZE, CONNECT_TIMEOUT) as ws:
            for text in texts:
                await ws.send(text)
                received = await ws.receive()
                assert type(received) is bytes
                assert received == text.encode()
            # pipelined: all sent before any is read, all back in order
            for text in texts:
                await ws.send(text)
            assert [await ws.receive() for _ in texts] == [text.encode() for text in texts]


async def test_messages_in_one_tcp_write_arrive_in_order_one_checkpoint_per_batch(
    listener: trio.SocketListener,
) -> None:
    with trio.fail_after(5):
        async with raw_pair(listener) as (ws, peer):
            for text in ["one", "twö", "three", "four"]:
                peer.protocol.send_text(text.encode())
            await peer.stream.send_all(peer.pending())  # one write, four frames
            assert await ws.receive() == b"one"
            # the rest were parsed by the same read; receive() still yields to the scheduler
            with trio.testing.assert_checkpoints():
                assert await ws.receive() == "twö".encode()
            # ... and receive_batch hands over everything parsed, after one checkpoint
            with trio.testing.assert_checkpoints():
                assert await ws.receive_batch() == [b"three", b"four"]


async def test_receive_and_receive_batch_checkpoint_once_closed(
    listener: trio.SocketListener,
) -> None:
    with trio.fail_after(5):
        async with raw_pair(listener) as (ws, peer):
            peer.protocol.send_text(b"last")
            peer.protocol.send_close(1000, "bye")
            await peer.flush()
            assert await ws.receive_batch() == [b"last"]
            for _ in range(2):
                with trio.testing.assert_checkpoints(), pytest.raises(WebSocketClosed):
                    await ws.receive_batch()
                with trio.testing.assert_checkpoints(), pytest.raises(WebSocketClosed):
                    await ws.receive()


async def test_a_flood_of_frames_does_not_starve_other_tasks(
    listener: trio.SocketListener,
) -> None:
    """A reader that never waits for the socket still lets other tasks run."""
    with trio.fail_after(5):
        async with raw_pair(listener) as (ws, peer):
            for i in range(200):
                peer.protocol.send_text(str(i).encode())
            await peer.stream.send_all(peer.pending())
            other_ran = 0

            async def other() -> None:
                nonlocal other_ran
                while True:
                    other_ran += 1
                    await trio.lowlevel.checkpoint()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(other)
                await trio.lowlevel.checkpoint()  # let other() start
                before = other_ran
                for i in range(200):
                    assert await ws.receive() == str(i).encode()
                assert other_ran - before >= 100
                nursery.cancel_scope.cancel()


async def test_a_message_written_with_the_101_response_is_not_lost(
    listener: trio.SocketListener,
) -> None:
    served = trio.Event()

    async def serve_one() -> None:
        peer = await accept(listener)
        async with peer.stream:
            peer.protocol.send_text(b"right after the upgrade")
            await peer.stream.send_all(peer.pending())  # response and frame in one write
            await served.wait()

    with trio.fail_after(1):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve_one)
            url = _url(_port(listener))
            async with connect_websockets_sansio(url, [], MAX_SIZE, CONNECT_TIMEOUT) as ws:
                assert await ws.receive() == b"right after the upgrade"
                served.set()  # the server hangs up: the client's close does not wait


async def test_concurrent_sends_and_receives_are_full_duplex(nursery: trio.Nursery) -> None:
    url = await start_server(nursery, echo)
    messages = [f"{i}:" + "z" * (i * 97) for i in range(200)]
    received: list[str | bytes] = []
    with trio.fail_after(5):
        async with connect_websockets_sansio(url, [], MAX_SIZE, CONNECT_TIMEOUT) as ws:

            async def read() -> None:
                for _ in messages:
                    received.append(await ws.receive())

            async with trio.open_nursery() as inner:
                inner.start_soon(read)
                for message in messages:
                    await ws.send(message)
    assert received == [message.encode() for message in messages]


async def test_sends_from_two_tasks_never_interleave_frames(
    listener: trio.SocketListener,
) -> None:
    size = 150_000
    received: list[bytes] = []
    with trio.fail_after(5):
        async with raw_pair(listener) as (ws, peer):

            async def sender(tag: str) -> None:
                for i in range(15):
                    await ws.send(f"{tag}{i:02d}" + tag * size)

            async def read() -> None:
                await trio.sleep(0.01)  # let the socket buffers fill: the senders block
                for _ in range(30):
                    received.append(await peer.next_message())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(read)
                nursery.start_soon(sender, "a")
                nursery.start_soon(sender, "b")
    for tag in "ab":
        mine = [message for message in received if message[:1] == tag.encode()]
        assert mine == [f"{tag}{i:02d}".encode() + tag.encode() * size for i in range(15)]


# -- fragments and short reads ---------------------------------------------------------------------


async def test_a_fragmented_message_arrives_joined(listener: trio.SocketListener) -> None:
    whole = "a✓b✓c".encode()  # the fragments split the two ✓ (three bytes each) in the middle
    with trio.fail_after(5):
        async with raw_pair(listener) as (ws, peer):
            peer.protocol.send_text(whole[:2], fin=False)
            peer.protocol.send_continuation(whole[2:6], fin=False)
            peer.protocol.send_continuation(whole[6:], fin=True)
            peer.protocol.send_text(b"next")
            await peer.flush()
            assert await ws.receive() == whole
            assert await ws.receive() == b"next"


async def test_a_ping_between_fragments_is_answered_and_the_message_stays_whole(
    listener: trio.SocketListener,
) -> None:
    with trio.fail_after(5):
        async with raw_pair(listener) as (ws, peer):
            peer.protocol.send_text(b"ab", fin=False)
            peer.protocol.send_ping(b"mid")
            peer.protocol.send_continuation(b"cd", fin=True)
            await peer.flush()
            assert await ws.receive() == b"abcd"
            pong = await peer.next_frame()
            assert (pong.opcode, bytes(pong.data)) == (Opcode.PONG, b"mid")


async def test_frames_written_one_byte_at_a_time_still_arrive_whole(
    listener: trio.SocketListener,
) -> None:
    long = "".join(chr(0x41 + i % 26) for i in range(300)).encode()  # a 16-bit length field
    with trio.fail_after(5):
        async with raw_pair(listener) as (ws, peer):
            peer.protocol.send_text(long)
            peer.protocol.send_text(b"fr", fin=False)
            peer.protocol.send_continuation(b"ag", fin=True)
            peer.protocol.send_text(b"")
            wire = peer.pending()
            received: list[str | bytes] = []

            async def read() -> None:
                for _ in range(3):
                    received.append(await ws.receive())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(read)
                for byte in wire:
                    await peer.stream.send_all(bytes([byte]))
                    # the reader takes this byte alone before the next is written
                    await trio.testing.wait_all_tasks_blocked()
    assert received == [long, b"frag", b""]


# -- pings -----------------------------------------------------------------------------------------


async def test_a_server_ping_is_answered_by_the_receiving_task(
    listener: trio.SocketListener,
) -> None:
    received: list[str | bytes] = []
    with trio.fail_after(5):
        async with raw_pair(listener) as (ws, peer):
            async with trio.open_nursery() as nursery:

                async def read() -> None:
                    received.append(await ws.receive())

                nursery.start_soon(read)
                await trio.testing.wait_all_tasks_blocked()  # the client is in receive()
                peer.protocol.send_ping(b"abc")
                await peer.flush()
                pong = await peer.next_frame()
                assert (pong.opcode, bytes(pong.data)) == (Opcode.PONG, b"abc")
                assert received == []  # the ping is not a message
                peer.protocol.send_text(b"after the ping")
                await peer.flush()
    assert received == [b"after the ping"]


# -- the server ends the connection ----------------------------------------------------------------


async def test_server_close_4000_is_raised_by_receive_then_send(nursery: trio.Nursery) -> None:
    echoed: list[int | None] = []
    done = trio.Event()

    async def close(conn: ServerConnection) -> None:
        await conn.aclose(4000, "bye")
        echoed.append(conn.protocol.close_rcvd.code if conn.protocol.close_rcvd else None)
        done.set()

    url = await start_server(nursery, close)
    with trio.fail_after(5):
        async with connect_websockets_sansio(url, [], MAX_SIZE, CONNECT_TIMEOUT) as ws:
            with pytest.raises(WebSocketClosed) as received:
                await ws.receive()
            assert _code_reason(received.value) == (4000, "bye")
            with pytest.raises(WebSocketClosed) as sent:
                await ws.send("too late")
            assert _code_reason(sent.value) == (4000, "bye")
            with pytest.raises(WebSocketClosed) as again:
                await ws.receive()
            assert _code_reason(again.value) == (4000, "bye")
        await done.wait()
    assert echoed == [4000]  # the client answered with the same code


async def test_messages_before_a_close_frame_are_delivered_and_the_close_echoed(
    listener: trio.SocketListener,
) -> None:
    with trio.fail_after(5):
        async with raw_pair(listener) as (ws, peer):
            peer.protocol.send_text(b"last words")
            peer.protocol.send_close(4000, "bye")
            await peer.stream.send_all(peer.pending())
            assert await ws.receive() == b"last words"
            with pytest.raises(WebSocketClosed) as closed:
                await ws.receive()
            assert _code_reason(closed.value) == (4000, "bye")
            reply = _close_of(await peer.next_frame())
            assert (reply.code, reply.reason) == (4000, "bye")


@pytest.mark.parametrize("how", ["fin", "reset", "mid-frame"])
async def test_an_abrupt_tcp_close_is_1006(listener: trio.SocketListener, how: str) -> None:
    with trio.fail_after(5):
        async with raw_pair(listener) as (ws, peer):
            if how == "reset":
                linger = struct.pack("ii", 1, 0)  # close() sends a RST
                peer.stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            elif how == "mid-frame":
                peer.protocol.send_text(b"x" * 1000)
                await peer.stream.send_all(peer.pending()[:500])
            await peer.stream.aclose()
            with pytest.raises(WebSocketClosed) as received:
                await ws.receive()
            assert _code_reason(received.value) == (1006, None)
            with pytest.raises(WebSocketClosed) as sent:
                await ws.send("too late")
            assert _code_reason(sent.value) == (1006, None)


# -- the client closes -----------------------------------------------------------------------------


class _CloseRecorder:
    """A server handler that waits for the close and records its code and reason."""

    def __init__(self) -> None:
        self.seen: list[tuple[int | None, str | None]] = []
        self.done = trio.Event()

    async def __call__(self, conn: ServerConnection) -> None:
        await conn.wait_closed()
        self.seen.append((conn.close_code, conn.close_reason))
        self.done.set()


async def test_aclose_sends_its_code_and_returns_once_the_server_answers(
    nursery: trio.Nursery,
) -> None:
    recorder = _CloseRecorder()
    url = await start_server(nursery, recorder)
    with trio.fail_after(1):  # far below CLOSE_TIMEOUT: the answer ended the wait
        async with connect_websockets_sansio(url, [], MAX_SIZE, CONNECT_TIMEOUT) as ws:
            await ws.aclose(4001, "done")
            await ws.aclose(4001, "done")  # idempotent
            with pytest.raises(WebSocketClosed) as received:
                await ws.receive()
            assert _code_reason(received.value) == (4001, "done")
            with pytest.raises(WebSocketClosed):
                await ws.send("too late")
        await recorder.done.wait()
    assert recorder.seen == [(4001, "done")]


async def test_leaving_the_context_closes_with_1000(nursery: trio.Nursery) -> None:
    recorder = _CloseRecorder()
    url = await start_server(nursery, recorder)
    with trio.fail_after(1):
        async with connect_websockets_sansio(url, [], MAX_SIZE, CONNECT_TIMEOUT) as ws:
            await ws.send("hi")
        await recorder.done.wait()
    assert recorder.seen == [(1000, "")]


async def test_aclose_while_another_task_receives(nursery: trio.Nursery) -> None:
    url = await start_server(nursery, echo)
    outcome: list[tuple[int | None, str | None]] = []
    with trio.fail_after(1):
        async with connect_websockets_sansio(url, [], MAX_SIZE, CONNECT_TIMEOUT) as ws:

            async def read() -> None:
                with pytest.raises(WebSocketClosed) as closed:
                    await ws.receive()
                outcome.append(_code_reason(closed.value))

            async with trio.open_nursery() as inner:
                inner.start_soon(read)
                await trio.testing.wait_all_tasks_blocked()
                await ws.aclose(1000)
    assert outcome == [(1000, None)]


async def test_aclose_gives_up_after_close_timeout_when_the_server_never_answers(
    listener: trio.SocketListener, autojump_clock: trio.testing.MockClock
) -> None:
    frames: list[Frame] = []
    eof_at: list[float] = []
    with trio.fail_after(CLOSE_TIMEOUT + 5):
        async with raw_pair(listener) as (ws, peer):

            async def server() -> None:
                frames.append(await peer.next_frame())
                with pytest.raises(EOFError):
                    await peer.next_frame()  # never answered: waits for the TCP close
                eof_at.append(trio.current_time())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(server)
                start = trio.current_time()
                await ws.aclose(1000)
                assert trio.current_time() - start == pytest.approx(CLOSE_TIMEOUT)
    assert [(close.code, close.reason) for close in map(_close_of, frames)] == [(1000, "")]
    assert eof_at == [pytest.approx(start + CLOSE_TIMEOUT)]


# -- the opening handshake -------------------------------------------------------------------------


async def test_headers_and_query_string_reach_the_server(listener: trio.SocketListener) -> None:
    path = "/v1/realtime?model=gpt-realtime&note=a%20b"
    headers = [("Authorization", "Bearer k"), ("OpenAI-Beta", "realtime=v1")]
    with trio.fail_after(5):
        async with raw_pair(listener, headers=headers, path=path) as (_, peer):
            request = peer.request
    assert request.path == path
    assert request.headers.get_all("Authorization") == ["Bearer k"]
    assert request.headers.get_all("OpenAI-Beta") == ["realtime=v1"]
    assert request.headers["Host"] == f"127.0.0.1:{_port(listener)}"
    assert request.headers["User-Agent"].startswith("Python/")
    assert "Sec-WebSocket-Extensions" not in request.headers  # no permessage-deflate offered


async def test_a_user_agent_header_replaces_the_default(listener: trio.SocketListener) -> None:
    with trio.fail_after(5):
        async with raw_pair(listener, headers=[("User-Agent", "kernl/1")]) as (_, peer):
            assert peer.request.headers.get_all("User-Agent") == ["kernl/1"]


@pytest.mark.parametrize("status", [401, 403, 503])
async def test_a_refused_upgrade_is_handshake_failed_with_its_status(
    nursery: trio.Nursery, status: int
) -> None:
    def refuse(conn: ServerConnection, request: Request) -> Response:
        return conn.respond(status, "no\n")

    url = await start_server(nursery, echo, process_request=refuse)
    with trio.fail_after(5), pytest.raises(HandshakeFailed) as failed:
        async with connect_websockets_sansio(url, [], MAX_SIZE, CONNECT_TIMEOUT):
            raise AssertionError("connected")
    assert failed.value.status_code == status
    assert str(status) in str(failed.value)


async def test_a_closed_port_is_handshake_failed() -> None:
    (tcp_listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = _port(tcp_listener)
    await tcp_listener.aclose()
    with trio.fail_after(5), pytest.raises(HandshakeFailed) as failed:
        async with connect_websockets_sansio(_url(port), [], MAX_SIZE, CONNECT_TIMEOUT):
            raise AssertionError("connected")
    assert failed.value.status_code is None


async def test_a_server_that_never_answers_the_upgrade_times_out(
    listener: trio.SocketListener,
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
) -> None:
    requests: list[bytes] = []

    async def hold() -> None:
        async with await listener.accept() as stream:
            requests.append(await stream.receive_some(65536))
            await trio.sleep_forever()

    nursery.start_soon(hold)
    start = trio.current_time()
    with pytest.raises(HandshakeFailed) as failed:
        async with connect_websockets_sansio(_url(_port(listener)), [], MAX_SIZE, 3.0):
            raise AssertionError("connected")
    assert trio.current_time() - start == pytest.approx(3.0)
    assert failed.value.status_code is None
    assert requests[0].startswith(b"GET / HTTP/1.1\r\n")


async def test_a_server_that_hangs_up_during_the_upgrade_is_handshake_failed(
    listener: trio.SocketListener, nursery: trio.Nursery
) -> None:
    async def hang_up() -> None:
        async with await listener.accept() as stream:
            await stream.receive_some(65536)

    nursery.start_soon(hang_up)
    with trio.fail_after(5), pytest.raises(HandshakeFailed) as failed:
        async with connect_websockets_sansio(_url(_port(listener)), [], MAX_SIZE, 5.0):
            raise AssertionError("connected")
    assert failed.value.status_code is None


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/", "not a url"])
async def test_an_invalid_url_is_handshake_failed(url: str) -> None:
    with trio.fail_after(5), pytest.raises(HandshakeFailed):
        async with connect_websockets_sansio(url, [], MAX_SIZE, 5.0):
            raise AssertionError("connected")


# -- max_message_size ------------------------------------------------------------------------------


@pytest.mark.parametrize("fragmented", [False, True], ids=["one-frame", "fragmented"])
async def test_a_message_over_max_message_size_ends_the_connection(
    nursery: trio.Nursery, fragmented: bool
) -> None:
    seen: list[int | None] = []
    done = trio.Event()

    async def send_big(conn: ServerConnection) -> None:
        await conn.send("a" * 1000)  # exactly the limit: accepted
        if fragmented:
            await conn.send(["b" * 400, "b" * 400, "b" * 400])
        else:
            await conn.send("b" * 1001)
        await conn.wait_closed()
        seen.append(conn.close_code)
        done.set()

    url = await start_server(nursery, send_big)
    with trio.fail_after(1):
        async with connect_websockets_sansio(url, [], 1000, CONNECT_TIMEOUT) as ws:
            assert await ws.receive() == b"a" * 1000
            with pytest.raises(WebSocketClosed) as closed:
                await ws.receive()
            # The client failed the connection with 1009 and says so (the server's echo of the
            # close is discarded by the protocol, RFC 6455 7.1.7).
            assert _code_reason(closed.value) == (
                1009,
                "a message was over max_message_size (1000 bytes)",
            )
            with pytest.raises(WebSocketClosed):
                await ws.send("too late")
        await done.wait()
    assert seen == [1009]


def _invalid_input(peer: RawPeer, failure: str) -> tuple[bytes, int]:
    """Bytes that make the client fail the connection, and the close code it then sends."""
    if failure == "too-big":
        peer.protocol.send_text(b"b" * 1001)  # the client's limit is 1000
        return peer.pending(), 1009
    return b"\x80\x00", 1002  # a continuation frame with nothing to continue


@pytest.mark.parametrize("failure", ["too-big", "protocol-error"])
async def test_a_failed_connection_says_why_once_the_server_hangs_up(
    listener: trio.SocketListener, failure: str
) -> None:
    with trio.fail_after(1):
        async with raw_pair(listener, max_message_size=1000) as (ws, peer):
            wire, code = _invalid_input(peer, failure)
            await peer.stream.send_all(wire)

            async def server() -> None:
                assert _close_of(await peer.next_frame()).code == code
                await peer.flush()  # the echo of the close frame
                await peer.stream.aclose()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(server)
                with pytest.raises(WebSocketClosed) as closed:
                    await ws.receive()
            # the echo is discarded after failing (RFC 6455 7.1.7): the code is the one sent
            assert closed.value.code == code
            if failure == "too-big":
                assert closed.value.reason == "a message was over max_message_size (1000 bytes)"


@pytest.mark.parametrize("failure", ["too-big", "protocol-error"])
async def test_a_failed_connection_ends_receive_even_if_the_server_never_hangs_up(
    listener: trio.SocketListener,
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    failure: str,
) -> None:
    closes: list[Close] = []
    async with raw_pair(listener, max_message_size=1000) as (ws, peer):

        async def server() -> None:
            closes.append(_close_of(await peer.next_frame()))
            await trio.sleep_forever()  # says nothing more and keeps the socket open

        wire, code = _invalid_input(peer, failure)
        await peer.stream.send_all(wire)
        nursery.start_soon(server)
        # the watchdog looks every WATCHDOG_TICK: the limit is met within two ticks
        with trio.move_on_after(CLOSE_TIMEOUT + 2 * WATCHDOG_TICK) as timeout:
            with pytest.raises(WebSocketClosed) as closed:
                await ws.receive()
        assert not timeout.cancelled_caught, "receive() still blocked after the close limit"
    assert closed.value.code == code  # why the client failed it, not the close that followed
    assert [close.code for close in closes] == [code]


# -- cancellation ----------------------------------------------------------------------------------


def _numbered(i: int, size: int) -> str:
    return f"{i:03d}:" + chr(ord("a") + i % 26) * size


async def test_a_cancelled_send_never_leaves_a_partial_frame(
    listener: trio.SocketListener,
) -> None:
    """Sends cancelled at many points, some while the socket buffer is full: the server must
    parse only whole messages, each sent once, in order; an uncancelled send always arrives."""
    size, count = 200_000, 60
    timeouts = [0.0, 1e-5, 1e-4, 3e-4, 1e-3, 3e-3]
    raised: dict[int, bool] = {}  # the send raised Cancelled
    expired: dict[int, bool] = {}  # its deadline passed while it ran
    received: list[bytes] = []
    with trio.fail_after(10):
        async with raw_pair(listener) as (ws, peer):

            async def read_all() -> None:
                await trio.sleep(0.02)  # not reading yet: buffers fill, sends block mid-frame
                while (message := await peer.next_message()) != b"END":
                    received.append(message)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(read_all)
                for i in range(count):
                    with trio.move_on_after(timeouts[i % len(timeouts)]) as scope:
                        await ws.send(_numbered(i, size))
                    raised[i] = scope.cancelled_caught
                    expired[i] = scope.cancel_called
                await ws.send("END")
    assert sum(expired.values()) >= count // 4, "too few sends outlived their deadline"
    indices = [int(message[:3]) for message in received]
    assert indices == sorted(set(indices))
    for i, message in zip(indices, received, strict=True):
        assert message == _numbered(i, size).encode()  # whole: never a cut or spliced frame
    # a send that returned normally was sent; one that raised Cancelled may have been sent
    assert {i for i in range(count) if not raised[i]} <= set(indices)


async def test_a_frame_whose_writer_was_already_cancelled_still_goes_out_whole(
    listener: trio.SocketListener,
) -> None:
    """A cancel that was pending before the write (the socket's own cancel check raises
    first) still writes every byte the protocol framed, then lets the cancel through."""
    client = await trio.open_tcp_stream("127.0.0.1", _port(listener))
    server = await listener.accept()
    data = bytes(range(256)) * 40
    async with client, server:
        with trio.CancelScope() as scope:
            scope.cancel()
            await _send_whole(client, data)
        assert scope.cancelled_caught
        received = b""
        with trio.move_on_after(5):
            while len(received) < len(data):
                received += await server.receive_some(len(data))
        assert received == data
