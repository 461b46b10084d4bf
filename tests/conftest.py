"""Shared fixtures: a scripted GA server on 127.0.0.1 and a model pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from kernl_trio.providers.openai import OpenAIRealtimeModel
from kernl_trio.testing import ScriptedServer


@pytest.fixture
async def server(nursery: trio.Nursery) -> AsyncIterator[ScriptedServer]:
    started: ScriptedServer = await nursery.start(ScriptedServer().run)
    yield started


@pytest.fixture
def model(server: ScriptedServer) -> OpenAIRealtimeModel:
    return OpenAIRealtimeModel("gpt-realtime", base_url=server.url)


@pytest.fixture(autouse=True)
def _collect_garbage_per_test() -> object:
    # Unclosed sockets must be blamed on the test that leaked them.
    yield None
    import gc

    gc.collect()
