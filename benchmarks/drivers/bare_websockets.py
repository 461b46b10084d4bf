"""The floor on the ``websockets`` library's trio implementation (websockets >= 17)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from websockets.trio.client import connect

from ._bare_trio import Receive, Send, main

MAX_MESSAGE = 16 * 1024 * 1024


@asynccontextmanager
async def open_ws(url: str) -> AsyncIterator[tuple[Send, Receive]]:
    async with connect(url, compression=None, max_size=MAX_MESSAGE, max_queue=64) as ws:
        yield ws.send, functools.partial(ws.recv, decode=False)


if __name__ == "__main__":
    main("bare-websockets", open_ws)
