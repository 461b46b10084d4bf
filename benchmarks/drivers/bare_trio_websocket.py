"""The floor on trio-websocket: ``get_message`` / ``send_message`` and nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio_websocket

from ._bare_trio import Receive, Send, main

MAX_MESSAGE = 16 * 1024 * 1024


@asynccontextmanager
async def open_ws(url: str) -> AsyncIterator[tuple[Send, Receive]]:
    async with trio_websocket.open_websocket_url(
        url, max_message_size=MAX_MESSAGE, message_queue_size=64
    ) as ws:
        yield ws.send_message, ws.get_message


if __name__ == "__main__":
    main("bare-trio-websocket", open_ws)
