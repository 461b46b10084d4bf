"""Test helpers: servers (scripted, and a raw WebSocket peer) and listing live tasks."""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any

import trio
import trio.lowlevel
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from kernl_trio.testing import Reply, ScriptedServer


async def start_server(
    nursery: trio.Nursery, replies: Sequence[Reply], *, session: dict[str, Any] | None = None
) -> ScriptedServer:
    server: ScriptedServer = await nursery.start(ScriptedServer(replies, session=session).run)
    return server


def _walk(task: trio.lowlevel.Task) -> set[trio.lowlevel.Task]:
    if "ScriptedServer.run" in task.name:
        return set()  # the test's own server, not the code under test
    found = {task}
    for nursery in task.child_nurseries:
        for child in nursery.child_tasks:
            found |= _walk(child)
    return found


def library_tasks() -> set[trio.lowlevel.Task]:
    """Every live task of this run except the scripted server's."""
    root = trio.lowlevel.current_root_task()
    assert root is not None, "called outside trio.run"
    return _walk(root)


class RawPeer:
    """The server's end of one connection: websockets' sans-I/O protocol on a trio stream.

    Nothing is written unless the test writes it: :meth:`pending` is what the protocol queued
    (frames the test sent, and the automatic pong / close replies).
    """

    def __init__(self, stream: trio.SocketStream, protocol: ServerProtocol, request: Request):
        self.stream = stream
        self.protocol = protocol
        self.request = request
        self._frames: collections.deque[Frame] = collections.deque()

    def pending(self) -> bytes:
        return b"".join(self.protocol.data_to_send())

    async def flush(self) -> None:
        data = self.pending()
        if data:
            await self.stream.send_all(data)

    async def next_frame(self) -> Frame:
        """The next frame the client sent; the client's bytes must always parse."""
        while not self._frames:
            data = await self.stream.receive_some(65536)
            if not data:
                raise EOFError("the client closed the TCP connection")
            self.protocol.receive_data(data)
            assert self.protocol.parser_exc is None, repr(self.protocol.parser_exc)
            events = self.protocol.events_received()
            self._frames.extend(event for event in events if isinstance(event, Frame))
        return self._frames.popleft()

    async def next_message(self) -> bytes:
        """The next data message, fragments joined; control frames are skipped."""
        parts: list[bytes] = []
        while True:
            frame = await self.next_frame()
            if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
                assert not parts, "a new message started inside a fragmented one"
                parts.append(bytes(frame.data))
            elif frame.opcode is Opcode.CONT:
                assert parts, "a continuation frame without a first frame"
                parts.append(bytes(frame.data))
            else:
                continue
            if frame.fin:
                return b"".join(parts)


async def accept(listener: trio.SocketListener) -> RawPeer:
    """Accept one connection and queue (not write) the 101 response to its upgrade."""
    stream = await listener.accept()
    protocol = ServerProtocol(max_size=None)
    events: list[object] = []
    while not events:
        data = await stream.receive_some(65536)
        assert data, "the client closed the connection during the handshake"
        protocol.receive_data(data)
        events = list(protocol.events_received())
    request = events[0]
    assert isinstance(request, Request)
    protocol.send_response(protocol.accept(request))
    return RawPeer(stream, protocol, request)
