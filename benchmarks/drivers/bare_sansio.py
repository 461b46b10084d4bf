"""A lower floor: ``websockets``' sans-I/O client protocol driven from the reading task.

No background reader task and no message queue between the socket and the application: the
task that wants a message reads the socket, feeds the protocol and takes the parsed frames.
Not one of the issue's two bare clients; it shows what a transport without its own task costs.
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from ._bare_trio import Receive, Send, main

MAX_MESSAGE = 16 * 1024 * 1024


@asynccontextmanager
async def open_ws(url: str) -> AsyncIterator[tuple[Send, Receive]]:
    uri = parse_uri(url)
    protocol = ClientProtocol(uri, max_size=MAX_MESSAGE)
    stream = await trio.open_tcp_stream(uri.host, uri.port)
    lock = trio.Lock()
    pending: collections.deque[bytes] = collections.deque()

    async def flush() -> None:
        out = protocol.data_to_send()
        if out:
            async with lock:
                await stream.send_all(b"".join(out))

    def absorb() -> None:
        for event in protocol.events_received():
            if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                pending.append(bytes(event.data))

    async def receive() -> bytes:
        while not pending:
            data = await stream.receive_some(65536)
            if not data:
                raise EOFError("the server closed the connection")
            protocol.receive_data(data)
            absorb()
            await flush()
        return pending.popleft()

    async def send(message: str) -> None:
        protocol.send_text(message.encode())
        await flush()

    async with stream:
        protocol.send_request(protocol.connect())
        await flush()
        while protocol.state is State.CONNECTING:
            protocol.receive_data(await stream.receive_some(65536))
            absorb()
        yield send, receive


if __name__ == "__main__":
    main("bare-sansio", open_ws)
