"""A WebSocket server driven by ``websockets``' sans-I/O protocol (``ServerProtocol``) on trio.

The bridge's server: each accepted TCP stream gets a ``ServerProtocol``; the connection's own
tasks read and write the stream, so there is no background task per connection. Before the
upgrade a *gate* sees every HTTP request and may answer it instead (a health check, a refused
signature); a plain GET the gate does not answer gets 400. After the upgrade the handler gets
a :class:`ServerWebSocket` (the :class:`~kernl_trio._websocket.WebSocket` interface: send a
text frame, receive a message, close).

Listening sockets are opened here (not by ``trio.open_tcp_listeners``) so that several
processes can share one port with ``SO_REUSEPORT``; the kernel spreads new connections
across them. :meth:`WebSocketServer.stop_accepting` closes the listeners while the
connections already accepted go on, which is how a server drains.
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import logging
import math
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
import trio
from websockets.exceptions import InvalidMessage
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from ._net import check_port
from ._websocket import CLOSE_TIMEOUT, WebSocketClosed

__all__ = [
    "CLOSE_TIMEOUT",
    "HANDSHAKE_TIMEOUT",
    "HttpRequest",
    "ServerWebSocket",
    "WebSocketServer",
    "open_listeners",
]

HANDSHAKE_TIMEOUT = 10.0
"""Seconds a client has to send its HTTP request after connecting."""
RECEIVE_BYTES = 65536
_ABNORMAL_CLOSURE = 1006


class _ProtocolLogger(logging.LoggerAdapter[logging.Logger]):
    """The protocol's per-connection INFO lines ("connection open") are DEBUG here: the
    application logs its own line per call."""

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self.debug(msg, *args, **kwargs)


logger = logging.getLogger("kernl_trio.websocket.server")
_PROTOCOL_LOGGER = _ProtocolLogger(logger, {})


@attrs.frozen
class HttpRequest:
    """The upgrade (or plain) request a client sent: its path with query, headers, address.

    Only ``GET`` and ``HEAD`` reach a gate; any other method gets 405."""

    path: str
    headers: tuple[tuple[str, str], ...]
    remote: str
    upgrade: bool
    method: str = "GET"
    """``GET``, or ``HEAD`` (the gate answers it as a GET; the body is left out)."""

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)


Gate = Callable[[HttpRequest], "tuple[int, str] | None"]
"""``gate(request)``: ``(status, body)`` to answer the request with instead of upgrading it, or
``None`` to go on (upgrade a WebSocket request; 400 for a plain one)."""

Handler = Callable[["ServerWebSocket"], Awaitable[None]]


class ServerWebSocket:
    """One accepted WebSocket (see the module docstring).

    One task receives at a time; sending may happen from other tasks (and from the reader
    itself, for pongs and the close reply): writes to the stream are serialised by a lock.
    """

    def __init__(
        self,
        stream: trio.SocketStream,
        protocol: ServerProtocol,
        request: HttpRequest,
        idle_timeout: float = math.inf,
    ) -> None:
        self._stream = stream
        self._idle_timeout = idle_timeout
        self._failure: str | None = None  # why this side gave up on the peer, if it did
        self._protocol = protocol
        self.request = request
        self._messages: collections.deque[str | bytes] = collections.deque()
        self._fragments: list[bytes] | None = None
        self._fragment_text = False
        self._send_lock = trio.Lock()
        self._receive_lock = trio.Lock()
        self._ended = False  # a close frame or the end of the stream arrived
        self._broken = False  # writing failed
        self._stream_closed = False
        self._closing = False  # aclose() sent a close frame

    @property
    def path(self) -> str:
        return self.request.path

    @property
    def close_code(self) -> int | None:
        """The close code the connection ended with (received, else sent), once ended."""
        protocol = self._protocol
        if protocol.close_rcvd is not None:
            return protocol.close_rcvd.code
        if protocol.close_sent is not None:
            return protocol.close_sent.code
        return _ABNORMAL_CLOSURE if self._ended or self._stream_closed else None

    @property
    def close_reason(self) -> str | None:
        protocol = self._protocol
        close = protocol.close_rcvd or protocol.close_sent
        return close.reason or None if close is not None else None

    # -- the WebSocket interface ---------------------------------------------------------------
    async def send(self, message: str | bytes) -> None:
        """Send one text frame (``bytes`` are UTF-8 text already)."""
        if self._protocol.state is not State.OPEN or self._broken:
            await trio.lowlevel.checkpoint()
            raise self._closed()
        self._protocol.send_text(message if isinstance(message, bytes) else message.encode())
        await self._flush()
        if self._broken:
            raise self._closed()

    async def send_many(self, messages: Sequence[str]) -> None:
        """Send ``messages`` as text frames, in order, in one write to the socket."""
        if self._protocol.state is not State.OPEN or self._broken:
            await trio.lowlevel.checkpoint()
            raise self._closed()
        for message in messages:
            self._protocol.send_text(message.encode())
        await self._flush()
        if self._broken:
            raise self._closed()

    async def receive(self) -> str | bytes:
        """The next message: ``str`` for a text frame, ``bytes`` for a binary one."""
        await self._wait_for_messages()
        return self._messages.popleft()

    async def receive_batch(self) -> list[str | bytes]:
        """Every message already received (at least one), waiting for one if there is none:
        one checkpoint per burst of frames rather than one per message."""
        await self._wait_for_messages()
        batch = list(self._messages)
        self._messages.clear()
        return batch

    async def _wait_for_messages(self) -> None:  # noqa: ASYNC910 - a checkpoint, or the loop ran (a lock)
        """Return once a message is queued, after a checkpoint; raise WebSocketClosed once
        the socket has ended with nothing queued."""
        messages = self._messages
        if messages:
            await trio.lowlevel.checkpoint()
        while not messages:
            if self._ended or self._stream_closed:
                await trio.lowlevel.checkpoint()
                raise self._closed()
            async with self._receive_lock:
                if not messages and not self._ended:
                    await self._read()

    async def aclose(self, code: int = 1000, reason: str | None = None) -> None:
        """Send a close frame, wait (at most CLOSE_TIMEOUT) for the peer's, close the stream."""
        if self._stream_closed:
            await trio.lowlevel.checkpoint()
            return
        try:
            with trio.move_on_after(CLOSE_TIMEOUT):
                if self._protocol.state is State.OPEN and not self._broken:
                    self._closing = True
                    self._protocol.send_close(code, reason or "")
                    await self._flush()
                while not self._ended and not self._broken:
                    async with self._receive_lock:
                        if not self._ended:
                            await self._read()
        finally:
            await self._close_stream()

    # -- internals ---------------------------------------------------------------------------
    async def _read(self) -> None:  # noqa: ASYNC910 - receive_some checkpoints, also raising
        protocol = self._protocol
        try:
            with trio.move_on_after(self._idle_timeout) as idle:
                data = await self._stream.receive_some(RECEIVE_BYTES)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if idle.cancelled_caught:  # a peer that vanished without closing (no FIN, no frame)
            self._failure = f"nothing received for {self._idle_timeout:g} s"
            await self._close_stream()
            return
        if data:
            protocol.receive_data(data)
        else:
            protocol.receive_eof()
            self._ended = True
        answer = self._absorb(protocol.events_received())
        if answer or not data or protocol.state is not State.OPEN:
            await self._flush()  # a pong, a close frame (ours or a reply) or an EOF is queued
        # A close frame arrived, or the protocol failed the connection (e.g. 1009): a close
        # sent that aclose() did not send.
        failed = protocol.close_sent is not None and not self._closing
        if protocol.close_rcvd is not None or protocol.state is State.CLOSED or failed:
            self._ended = True

    def _absorb(self, events: Sequence[object]) -> bool:
        """Queue the messages in ``events``; True if a control frame needs an answer."""
        answer = False
        for event in events:
            if not isinstance(event, Frame):
                continue
            opcode = event.opcode
            if opcode is Opcode.PING or opcode is Opcode.CLOSE:
                answer = True  # the protocol has queued the pong / the close reply
                continue
            data = bytes(event.data)
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                if event.fin:
                    self._messages.append(self._message(data, opcode is Opcode.TEXT))
                else:
                    self._fragments = [data]
                    self._fragment_text = opcode is Opcode.TEXT
            elif opcode is Opcode.CONT and self._fragments is not None:
                self._fragments.append(data)
                if event.fin:
                    whole = b"".join(self._fragments)
                    self._messages.append(self._message(whole, self._fragment_text))
                    self._fragments = None
        return answer

    @staticmethod
    def _message(data: bytes, text: bool) -> str | bytes:
        if not text:
            return data
        try:
            return data.decode()
        except UnicodeDecodeError:
            return data  # not text after all: the application sees it as binary

    async def _flush(self) -> None:
        if self._stream_closed:
            await trio.lowlevel.checkpoint()
            return
        async with self._send_lock:
            writes = self._protocol.data_to_send()
            try:
                # Shielded: the protocol has already framed these bytes; a cancelled write
                # would leave half a frame on the wire. One scope, shielded and bounded.
                deadline = trio.current_time() + CLOSE_TIMEOUT
                with trio.CancelScope(shield=True, deadline=deadline) as stall:
                    eof = bool(writes) and not writes[-1]
                    data = b"".join(writes)  # one write for every frame queued
                    if data:
                        await self._stream.send_all(data)
                    if eof:
                        await self._stream.send_eof()
                if stall.cancelled_caught:  # a peer that takes nothing: give up on it
                    self._broken = True
                    await self._close_stream()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                self._broken = True
                await self._close_stream()  # so a reader blocked on the stream wakes up

    async def _close_stream(self) -> None:
        if not self._stream_closed:
            self._stream_closed = True
            self._ended = True
            await trio.aclose_forcefully(self._stream)
        else:
            await trio.lowlevel.checkpoint()

    def _closed(self) -> WebSocketClosed:
        received = self._protocol.close_rcvd
        if received is not None:
            return WebSocketClosed(received.code, received.reason or None)
        sent = self._protocol.close_sent
        if sent is not None and sent.code != 1000:
            return WebSocketClosed(sent.code, sent.reason or None)
        return WebSocketClosed(_ABNORMAL_CLOSURE, self._failure)


async def open_listeners(
    host: str | None, port: int, *, reuse_port: bool = False, backlog: int = 1024
) -> list[trio.SocketListener]:
    """Listening TCP sockets on every address of ``host`` (all interfaces for ``None``).

    With ``reuse_port`` other processes may listen on the same port (``SO_REUSEPORT``). Port 0
    picks a free port, the same one for every address of ``host``. Raises ``OSError``
    (``socket.gaierror`` for a host that does not resolve).
    """
    check_port(port)
    if reuse_port and not hasattr(socket, "SO_REUSEPORT"):  # pragma: no cover - Windows
        raise OSError(errno.EOPNOTSUPP, "SO_REUSEPORT is not available on this system")
    infos = await trio.socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    listeners: list[trio.SocketListener] = []
    seen: set[tuple[int, object]] = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = trio.socket.socket(family, kind, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if reuse_port:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if port == 0 and listeners:  # one free port for every address
                    address = (address[0], listeners[0].socket.getsockname()[1], *address[2:])
                await sock.bind(address)
                sock.listen(backlog)
            except BaseException:
                sock.close()
                raise
            listeners.append(trio.SocketListener(sock))
    except BaseException:
        for listener in listeners:
            listener.socket.close()
        raise
    return listeners


class WebSocketServer:
    """Serves ``handler`` for every WebSocket accepted on ``host``:``port`` (see the module)."""

    def __init__(
        self,
        handler: Handler,
        *,
        gate: Gate | None = None,
        max_message_size: int = 2**20,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        idle_timeout: float = math.inf,
    ) -> None:
        self._handler = handler
        self.idle_timeout = idle_timeout
        self._gate = gate
        self.max_message_size = max_message_size
        self.handshake_timeout = handshake_timeout
        self.listeners: list[trio.SocketListener] = []
        self._accepting = trio.CancelScope()
        self.connections = 0
        """Connections open now (upgraded or not)."""

    @property
    def port(self) -> int:
        port: int = self.listeners[0].socket.getsockname()[1]
        return port

    def stop_accepting(self) -> None:
        """Close the listeners; connections already accepted go on."""
        self._accepting.cancel()

    async def serve(
        self,
        host: str | None,
        port: int,
        *,
        reuse_port: bool = False,
        task_status: trio.TaskStatus[WebSocketServer] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen, then serve until cancelled; after :meth:`stop_accepting`, until the
        connections already accepted have ended."""
        self.listeners = await open_listeners(host, port, reuse_port=reuse_port)
        try:
            async with trio.open_nursery() as connections:
                with self._accepting:
                    task_status.started(self)
                    await trio.serve_listeners(
                        self._connection, self.listeners, handler_nursery=connections
                    )
        finally:
            for listener in self.listeners:
                listener.socket.close()

    async def _connection(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        try:
            await self._serve(stream)
        except Exception:  # a bug (here, in the protocol or the handler): this connection's alone
            logger.exception("a WebSocket connection failed; the server goes on")
        finally:
            self.connections -= 1
            await trio.aclose_forcefully(stream)

    async def _serve(self, stream: trio.SocketStream) -> None:
        protocol = ServerProtocol(max_size=self.max_message_size, logger=_PROTOCOL_LOGGER)
        request: Request | None = None
        early: list[object] = []  # frames a client sent right behind its upgrade request
        try:
            with trio.move_on_after(self.handshake_timeout):
                # until a request, or the protocol gave up on the bytes (not HTTP, headers
                # too large, a body): then it has queued its answer, or an end of stream
                while request is None and protocol.handshake_exc is None:
                    data = await stream.receive_some(RECEIVE_BYTES)
                    if not data:
                        protocol.receive_eof()
                        break
                    protocol.receive_data(data)
                    for event in protocol.events_received():
                        if request is None and isinstance(event, Request):
                            request = event
                        else:
                            early.append(event)
            if request is None:  # a silent client, a closed one or not HTTP
                if isinstance(protocol.handshake_exc, InvalidMessage):
                    await _answer(stream, protocol, 400, "not an HTTP request\n")
                else:  # a silent or closed client; or the protocol's own 414 or 431
                    await _send(stream, protocol)
                return
            http = _http_request(request, stream)
            if http.method not in ("GET", "HEAD"):
                await _answer(stream, protocol, 405, "GET only\n", allow="GET, HEAD")
                return
            answer = self._gate(http) if self._gate is not None else None
            if answer is None and not http.upgrade:
                answer = (400, "this is a WebSocket endpoint\n")
            if answer is None and protocol.eof_sent:
                # More than a request arrived and the protocol could not parse the rest as
                # frames (a pipelined request, garbage): it has given up on the connection.
                answer = (400, "unexpected data after the upgrade request\n")
            if answer is not None:
                await _answer(stream, protocol, *answer, head=http.method == "HEAD")
                return
            response = protocol.accept(request)
            protocol.send_response(response)
            await _send(stream, protocol)
            if response.status_code != 101:
                return
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return  # noqa: ASYNC910 - the first read checkpointed (trio I/O does, raising too)
        ws = ServerWebSocket(stream, protocol, http, self.idle_timeout)
        ws._absorb(early)
        try:
            await self._handler(ws)
        finally:
            with trio.CancelScope(shield=True):
                await ws.aclose()


def _http_request(request: Request, stream: trio.SocketStream) -> HttpRequest:
    try:
        peer = stream.socket.getpeername()
        remote = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
    except OSError:
        remote = "?"
    upgrade = "websocket" in (request.headers.get("Upgrade") or "").lower()
    upgrade = upgrade and request.method == "GET"
    return HttpRequest(
        request.path, tuple(request.headers.raw_items()), remote, upgrade, request.method
    )


async def _answer(
    stream: trio.SocketStream,
    protocol: ServerProtocol,
    status: int,
    body: str,
    *,
    head: bool = False,
    allow: str | None = None,
) -> None:
    """Answer a plain HTTP request (and close): ``status`` and ``body`` (only its length for
    ``HEAD``). Written here rather than through the protocol, which may already have given
    up on the connection."""
    response = protocol.reject(status, body)
    if allow is not None:
        response.headers["Allow"] = allow
    if head:
        response = dataclasses.replace(response, body=b"")
    with trio.move_on_after(CLOSE_TIMEOUT):
        await stream.send_all(response.serialize())
        await stream.send_eof()


async def _send(stream: trio.SocketStream, protocol: ServerProtocol) -> None:  # noqa: ASYNC910 - after the handshake reads
    with trio.move_on_after(CLOSE_TIMEOUT):
        for data in protocol.data_to_send():
            if data:
                await stream.send_all(data)
            else:
                await stream.send_eof()
