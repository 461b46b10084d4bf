"""Test helpers: starting the scripted server and listing live tasks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import trio
import trio.lowlevel

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
    return _walk(trio.lowlevel.current_root_task())
