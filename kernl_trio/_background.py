"""Running a helper task for exactly as long as an ``async with`` block."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import trio

from ._errors import collapse


@asynccontextmanager
async def in_background(
    task: Callable[[], Awaitable[None]], close: Callable[[], Awaitable[None]]
) -> AsyncIterator[None]:
    """Run ``task`` while the block runs; on leaving, ``close()`` (shielded), then cancel it.

    Errors come out as one exception, not a group (see :func:`kernl_trio._errors.collapse`).
    """
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(task)
            try:
                yield
            finally:
                with trio.CancelScope(shield=True):
                    await close()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise collapse(group) from None
