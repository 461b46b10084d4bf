"""Shared fixtures: a scripted GA server on 127.0.0.1 and a model pointed at it."""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator

import pytest
import trio
from hypothesis import settings

from kernl_trio.providers.openai import OpenAIRealtimeModel
from kernl_trio.testing import ScriptedServer


@pytest.fixture
async def server(nursery: trio.Nursery) -> AsyncIterator[ScriptedServer]:
    started: ScriptedServer = await nursery.start(ScriptedServer().run)
    yield started


@pytest.fixture
def model(server: ScriptedServer) -> OpenAIRealtimeModel:
    return OpenAIRealtimeModel("gpt-realtime", base_url=server.url)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Collect once after collection and freeze what survives: the objects every test
    shares (modules, the hypothesis strategies, ...) leave the collector's generations,
    so the collections the tests trigger themselves stay cheap. A test that needs a full
    collection (an unclosed socket's ResourceWarning blamed on it) calls ``gc.collect()``.
    """
    gc.collect()
    gc.freeze()


# Hypothesis: a quick profile by default, a thorough one in CI (.ci/run sets the variable).
settings.register_profile("default", max_examples=25, deadline=None)
settings.register_profile("ci", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
