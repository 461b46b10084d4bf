"""The default connector: ``websockets``' sans-I/O ``ClientProtocol`` driven by the tasks
that call it, with no background task per message.

The reader task parses frames as it reads the socket; ``receive_batch`` hands over every
message already parsed after one checkpoint (``receive`` checkpoints once per message). A free
lock is taken without a checkpoint of its own, as the socket I/O under it has one. Frames go
out as text, from ``bytes`` without a decode and re-encode. Writes are shielded: a cancelled
writer never leaves half a frame.

The protocol answers the server's pings and close frames itself while something is
receiving, which a connection always is. One watchdog task per connection wakes every
``WATCHDOG_TICK`` and compares progress counters, so reads and writes pay for no timer of
their own: a peer silent for ``PING_INTERVAL`` is pinged; one that then sends nothing for
``PING_TIMEOUT``, or takes nothing written for ``SEND_STALL_TIMEOUT``, or never finishes a
close we started, has its stream closed, and ``receive`` / ``send`` raise
:class:`~kernl_trio.transports.WebSocketClosed` (1006) with the reason. An incoming message
over ``max_message_size`` closes the socket with code 1009 and raises ``WebSocketClosed(1009,
reason)`` naming the limit. No permessage-deflate: base64 audio hardly compresses.
"""

from __future__ import annotations

import collections
import logging
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import trio
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI, PayloadTooBig
from websockets.frames import Frame, Opcode
from websockets.http11 import USER_AGENT
from websockets.protocol import State
from websockets.uri import parse_uri

from .._background import in_background
from .._secret import reveal
from ..limits import (
    CLOSE_TIMEOUT,
    PING_INTERVAL,
    PING_TIMEOUT,
    RECEIVE_BYTES,
    SEND_STALL_TIMEOUT,
    WATCHDOG_TICK,
)
from ._base import (
    ABNORMAL_CLOSURE,
    Header,
    RedactingLogger,
    WebSocket,
    WebSocketClosed,
    cannot_open,
    refused,
    too_big,
)

__all__ = ["connect_websockets_sansio"]

_logger = RedactingLogger(logging.getLogger("websockets.client"))


class _SansIOWebSocket:
    """The sans-I/O protocol, driven by the callers' tasks (see the module docstring).

    One task receives at a time (the connection's reader); sending may happen from another
    task (the writer) and from the reader itself (pongs, the close reply): writes to the
    stream are serialised by a lock.
    """

    #: ``send`` is shielded and bounded by SEND_STALL_TIMEOUT itself (see the module
    #: docstring), so the connection need not wrap it in scopes of its own.
    send_is_shielded = True

    def __init__(
        self, stream: trio.abc.Stream, protocol: ClientProtocol, max_message_size: int
    ) -> None:
        self._stream = stream
        self._protocol = protocol
        self._max_message_size = max_message_size
        self._messages: collections.deque[bytes] = collections.deque()
        self._fragments: list[bytes] | None = None
        self._send_lock = trio.Lock()
        self._receive_lock = trio.Lock()
        self._ended = False  # a close frame or the end of the stream arrived
        self._broken = False  # writing failed
        self._stream_closed = False
        self._failure: str | None = None  # why the client gave up on the peer, if it did
        # Progress counters the watchdog compares from one tick to the next (no clock read
        # and no cancel scope per message).
        self._reads = 0
        self._writes = 0
        self._writing = False

    # -- the WebSocket interface ---------------------------------------------------------
    async def send(self, message: str | bytes) -> None:
        if self._protocol.state is not State.OPEN or self._broken:
            await trio.lowlevel.checkpoint()
            raise self._closed()
        # A cancel point before anything is framed; the write itself is shielded.
        await trio.lowlevel.checkpoint_if_cancelled()
        self._protocol.send_text(message if isinstance(message, bytes) else message.encode())
        await self._flush()
        if self._broken:
            raise self._closed()

    async def receive(self) -> str | bytes:
        await self._wait_for_messages()
        return self._messages.popleft()

    async def receive_batch(self) -> list[str | bytes]:
        await self._wait_for_messages()
        messages = self._messages
        batch: list[str | bytes] = list(messages)
        messages.clear()
        return batch

    async def _wait_for_messages(self) -> None:  # noqa: ASYNC910 - checkpoints, see below
        """Return once a message is queued, after at least one checkpoint; raise
        WebSocketClosed (after one) once the socket has ended with nothing queued."""
        messages = self._messages
        if messages or self._ended or self._stream_closed:
            await trio.lowlevel.checkpoint()
        # Otherwise the loop checkpoints: a contended lock's acquire, or the socket read.
        while not messages:
            if self._ended or self._stream_closed:
                raise self._closed()
            lock = self._receive_lock
            await _acquire(lock)
            try:
                if not messages and not self._ended:
                    await self._read()
            finally:
                lock.release()

    async def aclose(self, code: int = 1000, reason: str | None = None) -> None:
        """Send a close frame, wait (at most CLOSE_TIMEOUT) for the peer's, close the stream."""
        if self._stream_closed:
            await trio.lowlevel.checkpoint()
            return
        try:
            # Bounded as a whole: a peer that stops reading cannot hold the close either.
            with trio.move_on_after(CLOSE_TIMEOUT):
                if self._protocol.state is State.OPEN and not self._broken:
                    self._protocol.send_close(code, reason or "")
                    await self._flush()
                while not self._ended and not self._broken:
                    # If the reader task is receiving, it sees the close frame and this waits
                    # for the lock; otherwise this reads (and drops) what comes until it.
                    async with self._receive_lock:
                        if not self._ended:
                            await self._read()
        finally:
            await self._close_stream()

    # -- internals ----------------------------------------------------------------------------
    async def watchdog(self) -> None:
        """Every WATCHDOG_TICK: ping a silent peer; give up on a peer that answers nothing,
        on a write the peer does not take, on a close it never finishes. Giving up closes
        the stream, so a blocked ``receive`` or ``send`` raises WebSocketClosed (1006)."""
        await trio.lowlevel.checkpoint()
        now = trio.current_time()
        heard_at = written_at = open_at = now
        pinged_at: float | None = None
        reads, writes = self._reads, self._writes
        while not self._stream_closed:
            await trio.sleep(WATCHDOG_TICK)
            now = trio.current_time()
            if self._reads != reads:
                reads, heard_at, pinged_at = self._reads, now, None
            if self._writes != writes or not self._writing:
                writes, written_at = self._writes, now
            if self._protocol.state is State.OPEN or self._ended:
                open_at = now
            # Progress is seen at ticks, so a stall or a close began up to a tick earlier than
            # noted: one tick more keeps every limit a lower bound.
            if now - written_at >= SEND_STALL_TIMEOUT + WATCHDOG_TICK:
                failure = f"the peer read nothing for {SEND_STALL_TIMEOUT:g} s"
            elif now - open_at >= CLOSE_TIMEOUT + WATCHDOG_TICK:  # we failed it; no hang-up
                failure = f"the peer did not close within {CLOSE_TIMEOUT:g} s"
            elif pinged_at is not None and now - pinged_at >= PING_TIMEOUT:
                failure = f"nothing from the peer for {PING_INTERVAL + PING_TIMEOUT:g} s"
            else:
                if pinged_at is None and now - heard_at >= PING_INTERVAL and not self._writing:
                    pinged_at = now
                    self._protocol.send_ping(b"kernl")
                    # Not shielded but bounded: this task must never hang on the peer.
                    with trio.move_on_after(SEND_STALL_TIMEOUT) as stalled:
                        await self._flush(shield=False)
                    if not stalled.cancelled_caught:
                        continue
                    failure = f"the peer read nothing for {SEND_STALL_TIMEOUT:g} s"
                else:
                    continue
            self._failure = failure
            self._ended = self._broken = True
            await self._close_stream()

    async def _read(self) -> None:  # noqa: ASYNC910 - under _wait_for_messages' checkpoint
        protocol = self._protocol
        try:
            data = await self._stream.receive_some(RECEIVE_BYTES)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if data:
            protocol.receive_data(data)
            self._reads += 1
        else:
            protocol.receive_eof()
            self._ended = True
        answer = self._absorb(protocol.events_received())
        if answer or not data or protocol.state is not State.OPEN:
            await self._flush()  # a pong, a close frame (ours or a reply) or an EOF is queued
        if protocol.close_rcvd is not None or protocol.state is State.CLOSED:
            self._ended = True

    def _absorb(self, events: Sequence[object]) -> bool:
        """Queue the messages in ``events``; True if a control frame needs an answer."""
        answer = False
        for event in events:
            if not isinstance(event, Frame):
                continue
            opcode, data = event.opcode, event.data
            if opcode is Opcode.PING or opcode is Opcode.CLOSE:
                answer = True  # the protocol has queued the pong / the close reply
                continue
            if data.__class__ is not bytes:  # the parser gives bytes; the type allows views
                data = bytes(data)
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                if event.fin:
                    self._messages.append(data)
                else:
                    self._fragments = [data]
            elif opcode is Opcode.CONT and self._fragments is not None:
                self._fragments.append(data)
                if event.fin:
                    self._messages.append(b"".join(self._fragments))
                    self._fragments = None
        return answer

    async def _flush(self, *, shield: bool = True) -> None:
        if self._stream_closed:
            await trio.lowlevel.checkpoint()
            return
        # Bytes leave the protocol only once the lock is held, so a caller cancelled while
        # waiting for it leaves them for the next writer instead of losing them.
        await _acquire(self._send_lock)
        try:
            writes = self._protocol.data_to_send()
            # Written whole even if the caller is cancelled meanwhile: the protocol has
            # already framed these bytes, so a cancelled write would leave half a frame on
            # the wire. The watchdog bounds it: a peer that takes nothing for
            # SEND_STALL_TIMEOUT gets its stream closed under the write.
            self._writing = True
            stream = self._stream
            for data in writes:
                if not data:
                    if isinstance(stream, trio.SocketStream):
                        with trio.CancelScope(shield=shield):
                            await stream.send_eof()  # the protocol asks for a half-close
                elif not shield:
                    await stream.send_all(data)
                elif stream.__class__ is trio.SocketStream:
                    await _send_whole(stream, data)
                else:
                    with trio.CancelScope(shield=True):
                        await stream.send_all(data)
                self._writes += 1
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._broken = True
        finally:
            self._writing = False
            self._send_lock.release()

    async def _close_stream(self) -> None:
        if not self._stream_closed:
            self._stream_closed = True
            await trio.aclose_forcefully(self._stream)
        else:
            await trio.lowlevel.checkpoint()

    def _closed(self) -> WebSocketClosed:
        received = self._protocol.close_rcvd
        if received is not None:
            return WebSocketClosed(received.code, received.reason or None)
        if isinstance(self._protocol.parser_exc, PayloadTooBig):
            return too_big(self._max_message_size)
        sent = self._protocol.close_sent
        if self._protocol.parser_exc is not None and sent is not None:  # the peer broke RFC 6455
            return WebSocketClosed(sent.code, sent.reason or None)
        return WebSocketClosed(ABNORMAL_CLOSURE, self._failure)


async def _send_whole(stream: trio.SocketStream, data: bytes) -> None:
    """Write all of ``data`` even if the caller is cancelled meanwhile, usually without the
    cost of a cancel scope: the socket's ``send`` raises ``Cancelled`` only before it has
    written anything, and one call mostly takes everything. Only a partial write, or a
    cancellation that came first, continues under a shield."""
    try:
        sent = await stream.socket.send(data)
    except trio.Cancelled:
        with trio.CancelScope(shield=True):
            await stream.send_all(data)
        raise
    except OSError as exc:
        raise trio.BrokenResourceError(f"the socket failed: {exc}") from exc
    if sent < len(data):
        with trio.CancelScope(shield=True):
            await stream.send_all(memoryview(data)[sent:])


async def _acquire(lock: trio.Lock) -> None:  # noqa: ASYNC910 - the I/O under it checkpoints
    """Take ``lock``; a free one without a checkpoint (the socket I/O under it has its own),
    which saves a trip through the scheduler per read and per write."""
    try:
        lock.acquire_nowait()
    except trio.WouldBlock:
        await lock.acquire()


async def _open_sansio(
    url: str, headers: Sequence[Header], max_message_size: int
) -> _SansIOWebSocket:
    uri = parse_uri(url)
    stream: trio.abc.Stream = await trio.open_tcp_stream(uri.host, uri.port)
    try:
        if uri.secure:
            tls = trio.SSLStream(stream, ssl.create_default_context(), server_hostname=uri.host)
            await tls.do_handshake()
            stream = tls
        protocol = ClientProtocol(uri, max_size=max_message_size, logger=_logger)
        request = protocol.connect()
        for name, value in headers:
            request.headers[name] = reveal(value)  # the secret reaches the wire, not a log
        request.headers.setdefault("User-Agent", USER_AGENT)
        protocol.send_request(request)  # logged through _logger, secrets redacted
        del request  # the protocol keeps no reference; the serialized bytes are in its buffer
        ws = _SansIOWebSocket(stream, protocol, max_message_size)
        await ws._flush()
        answer = False
        while protocol.state is State.CONNECTING and protocol.handshake_exc is None:
            data = await stream.receive_some(RECEIVE_BYTES)
            if data:
                protocol.receive_data(data)
            else:
                protocol.receive_eof()
            # frames that came with the response, a close frame included
            answer = ws._absorb(protocol.events_received()) or answer
            if not data and protocol.handshake_exc is None:
                raise OSError("the server closed the connection during the handshake")
        if protocol.handshake_exc is not None:
            raise protocol.handshake_exc
        if answer:
            await ws._flush()  # a pong, or the reply to a close frame
        if protocol.close_rcvd is not None or protocol.state is State.CLOSED:
            ws._ended = True
        return ws
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise


@asynccontextmanager
async def connect_websockets_sansio(
    url: str,
    headers: Sequence[Header],
    max_message_size: int,
    connect_timeout: float,
) -> AsyncIterator[WebSocket]:
    """The default :data:`~kernl_trio.transports.WebSocketConnector` (see the module
    docstring): ``websockets``' sans-I/O protocol, driven by the connection's own tasks."""
    try:
        with trio.fail_after(connect_timeout):
            ws = await _open_sansio(url, headers, max_message_size)
    except InvalidStatus as exc:
        response = exc.response
        raise refused(url, response.status_code, response.body, headers) from None
    except (
        InvalidHandshake,
        InvalidURI,
        OSError,
        ssl.SSLError,
        trio.TooSlowError,
        trio.BrokenResourceError,
    ) as exc:
        raise cannot_open(url, exc) from None

    async def close() -> None:
        await ws.aclose(1000 if ws._protocol.state is State.OPEN else 1011)

    async with in_background(ws.watchdog, close):
        yield ws
