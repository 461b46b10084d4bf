"""Two :data:`~kernl_trio._websocket.WebSocketConnector` s on the ``websockets`` library.

``websockets`` (>= 17) ships a trio implementation (``websockets.trio.client.connect``) whose
frame parsing costs less than half of what trio-websocket's (wsproto + h11) does per message;
see docs/performance.md, "Session benchmarks". This module adapts it to the small interface
connections are written against (``send`` / ``receive`` / ``aclose``), with the same error
contract as :func:`kernl_trio._websocket.connect_trio_websocket`:

* a failed opening handshake (refused upgrade, DNS or TCP error, timeout, invalid URL) raises
  :class:`~kernl_trio.errors.HandshakeFailed`, with ``status_code`` when the server answered;
* once open, a closed socket makes ``send`` and ``receive`` raise
  :class:`~kernl_trio._websocket.WebSocketClosed` (close code 1006 when no close frame came).

Choices, all measured or matching the trio-websocket connector:

* no permessage-deflate (``websockets`` enables it by default): base64 audio hardly compresses
  and deflate would cost CPU on every frame; trio-websocket offers no compression either;
* text frames are returned as UTF-8 ``bytes`` (``recv(decode=False)``): the codec's
  ``orjson.loads`` reads bytes directly, so no ``str`` is built per frame;
* ``max_queue=64`` frames before the reader pauses (trio-websocket: ``message_queue_size=64``);
* keepalive pings every 20 s (the library's default) detect a dead peer;
* closing waits at most 5 s for the peer's close frame.

:func:`connect_websockets_sansio` is a second connector on the same library's sans-I/O
``ClientProtocol``, driven by the tasks that call it instead of a background task of its own:
the reader task parses frames as it reads the socket; ``receive_batch`` hands over every
message already parsed after one checkpoint (``receive`` checkpoints once per message); a
free lock is taken without a checkpoint of its own, as the socket I/O under it has one.
It is the default (the fastest client measured, docs/performance.md).
It answers the server's pings while
something is receiving, which a connection always is. Writes are shielded: a cancelled
writer never leaves half a frame. One watchdog task per connection wakes every
``WATCHDOG_TICK`` and compares progress counters, so reads and writes pay for no timer of
their own: a peer silent for ``PING_INTERVAL`` is pinged; one that then sends nothing for
``PING_TIMEOUT``, or takes nothing written for ``SEND_STALL_TIMEOUT``, or never finishes a
close we started, has its stream closed, and ``receive`` / ``send`` raise
:class:`~kernl_trio._websocket.WebSocketClosed` (1006) with the reason.
"""

from __future__ import annotations

import collections
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import attrs
import trio
from websockets.client import ClientProtocol
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidProxy,
    InvalidStatus,
    InvalidURI,
)
from websockets.frames import Frame, Opcode
from websockets.http11 import USER_AGENT
from websockets.protocol import State
from websockets.trio.client import ClientConnection, connect
from websockets.uri import parse_uri

from ._background import in_background
from ._websocket import WebSocket, WebSocketClosed
from .errors import HandshakeFailed

__all__ = ["connect_websockets_sansio", "connect_websockets_trio"]

CLOSE_TIMEOUT = 5.0
SEND_STALL_TIMEOUT = 10.0
PING_INTERVAL = 20.0  # sans-I/O: silence from the peer this long -> ping it
PING_TIMEOUT = 20.0  # ... and nothing this long after the ping -> the connection is dead
WATCHDOG_TICK = 2.5  # how often the sans-I/O watchdog looks (its figures are this coarse)
MAX_QUEUE = 64
_ABNORMAL_CLOSURE = 1006
RECEIVE_BYTES = 65536


@attrs.define
class _WebsocketsTrio:
    _ws: ClientConnection

    async def send(self, message: str | bytes) -> None:
        try:
            await self._ws.send(message, text=True)
        except ConnectionClosed as exc:
            raise _closed(exc) from None

    async def receive(self) -> str | bytes:
        try:
            return await self._ws.recv(decode=False)
        except ConnectionClosed as exc:
            raise _closed(exc) from None

    async def receive_batch(self) -> list[str | bytes]:
        return [await self.receive()]

    async def aclose(self, code: int = 1000, reason: str | None = None) -> None:
        await self._ws.aclose(code, reason or "")


@asynccontextmanager
async def connect_websockets_trio(
    url: str,
    headers: Sequence[tuple[str, str]],
    max_message_size: int,
    connect_timeout: float,
) -> AsyncIterator[WebSocket]:
    """A connector on ``websockets.trio`` (same signature as ``connect_trio_websocket``)."""
    opened = False
    try:
        async with connect(
            url,
            additional_headers=list(headers),
            compression=None,
            open_timeout=connect_timeout,
            close_timeout=CLOSE_TIMEOUT,
            max_size=max_message_size,
            max_queue=MAX_QUEUE,
        ) as ws:
            opened = True
            yield _WebsocketsTrio(ws)
    except InvalidStatus as exc:
        if opened:
            raise
        status = exc.response.status_code
        raise HandshakeFailed(
            f"{url} refused the WebSocket upgrade ({status})", status_code=status
        ) from None
    except (InvalidHandshake, InvalidURI, InvalidProxy, OSError, trio.TooSlowError) as exc:
        # TimeoutError (the open timeout) is an OSError.
        if opened:
            raise
        raise HandshakeFailed(f"cannot open a WebSocket to {url}: {exc!r}") from None


def _closed(exc: ConnectionClosed) -> WebSocketClosed:
    received = exc.rcvd
    if received is None:
        return WebSocketClosed(_ABNORMAL_CLOSURE, None)
    return WebSocketClosed(received.code, received.reason or None)


class _SansIOWebSocket:
    """The sans-I/O protocol, driven by the callers' tasks (see the module docstring).

    One task receives at a time (the connection's reader); sending may happen from another
    task (the writer) and from the reader itself (pongs, the close reply): writes to the
    stream are serialised by a lock.
    """

    #: ``send`` is shielded and bounded by SEND_STALL_TIMEOUT itself (see the module
    #: docstring), so the connection need not wrap it in scopes of its own.
    send_is_shielded = True

    def __init__(self, stream: trio.abc.Stream, protocol: ClientProtocol) -> None:
        self._stream = stream
        self._protocol = protocol
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

    async def _wait_for_messages(self) -> None:
        """Return once a message is queued, after exactly one checkpoint (or more); raise
        WebSocketClosed once the socket has ended with nothing queued."""
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

    async def _read(self) -> None:
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
            # Shielded: the protocol has already framed these bytes, so a cancelled write
            # would leave half a frame on the wire. The watchdog bounds it: a peer that
            # takes nothing for SEND_STALL_TIMEOUT gets its stream closed under the write.
            self._writing = True
            with trio.CancelScope(shield=shield):
                for data in writes:
                    if data:
                        await self._stream.send_all(data)
                    elif isinstance(self._stream, trio.SocketStream):
                        await self._stream.send_eof()  # the protocol asks for a half-close
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

    def _closed(self) -> WebSocketClosed:
        received = self._protocol.close_rcvd
        if received is None:
            return WebSocketClosed(_ABNORMAL_CLOSURE, self._failure)
        return WebSocketClosed(received.code, received.reason or None)


async def _acquire(lock: trio.Lock) -> None:
    """Take ``lock``; a free one without a checkpoint (the socket I/O under it has its own),
    which saves a trip through the scheduler per read and per write."""
    try:
        lock.acquire_nowait()
    except trio.WouldBlock:
        await lock.acquire()


async def _open_sansio(
    url: str, headers: Sequence[tuple[str, str]], max_message_size: int
) -> _SansIOWebSocket:
    uri = parse_uri(url)
    stream: trio.abc.Stream = await trio.open_tcp_stream(uri.host, uri.port)
    try:
        if uri.secure:
            tls = trio.SSLStream(stream, ssl.create_default_context(), server_hostname=uri.host)
            await tls.do_handshake()
            stream = tls
        protocol = ClientProtocol(uri, max_size=max_message_size)
        request = protocol.connect()
        for name, value in headers:
            request.headers[name] = value
        request.headers.setdefault("User-Agent", USER_AGENT)
        protocol.send_request(request)
        ws = _SansIOWebSocket(stream, protocol)
        await ws._flush()
        while protocol.state is State.CONNECTING and protocol.handshake_exc is None:
            data = await stream.receive_some(RECEIVE_BYTES)
            if data:
                protocol.receive_data(data)
            else:
                protocol.receive_eof()
            ws._absorb(protocol.events_received())  # frames that came with the response
            if not data and protocol.handshake_exc is None:
                raise OSError("the server closed the connection during the handshake")
        if protocol.handshake_exc is not None:
            raise protocol.handshake_exc
        return ws
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise


@asynccontextmanager
async def connect_websockets_sansio(
    url: str,
    headers: Sequence[tuple[str, str]],
    max_message_size: int,
    connect_timeout: float,
) -> AsyncIterator[WebSocket]:
    """A connector on ``websockets``' sans-I/O client protocol (see the module docstring)."""
    try:
        with trio.fail_after(connect_timeout):
            ws = await _open_sansio(url, headers, max_message_size)
    except InvalidStatus as exc:
        status = exc.response.status_code
        raise HandshakeFailed(
            f"{url} refused the WebSocket upgrade ({status})", status_code=status
        ) from None
    except (
        InvalidHandshake,
        InvalidURI,
        OSError,
        ssl.SSLError,
        trio.TooSlowError,
        trio.BrokenResourceError,
    ) as exc:
        raise HandshakeFailed(f"cannot open a WebSocket to {url}: {exc!r}") from None

    async def close() -> None:
        await ws.aclose(1000 if ws._protocol.state is State.OPEN else 1011)

    async with in_background(ws.watchdog, close):
        yield ws
