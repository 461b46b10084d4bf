"""Shared fixtures: a scripted GA server on 127.0.0.1 and a model pointed at it."""

from __future__ import annotations

import contextlib
import gc
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio
from attrs import frozen
from hypothesis import settings

if TYPE_CHECKING:  # imported where used: the xdist controller loads this file too
    from kernl_trio.providers.openai import OpenAIRealtimeModel
    from kernl_trio.testing import ScriptedServer


@pytest.fixture
async def server(nursery: trio.Nursery) -> AsyncIterator[ScriptedServer]:
    from kernl_trio.testing import ScriptedServer

    started: ScriptedServer = await nursery.start(ScriptedServer().run)
    yield started


@pytest.fixture
def model(server: ScriptedServer) -> OpenAIRealtimeModel:
    from kernl_trio.providers.openai import OpenAIRealtimeModel

    return OpenAIRealtimeModel("gpt-realtime", base_url=server.url)


@frozen
class DemoRun:
    """One in-process run of the command line (``kernl_trio.cli.main``) and what it printed."""

    argv: tuple[str, ...]
    status: int
    stdout: str
    stderr: str
    out: Path
    """The demo's --out directory."""


def run_cli(argv: tuple[str, ...], out: Path) -> DemoRun:
    from kernl_trio.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(list(argv))
    return DemoRun(argv, status, stdout.getvalue(), stderr.getvalue(), out)


# `kernl-trio demo --fast` is deterministic: the tests that only read one run's output and
# files (tests/test_demo.py, tests/test_cli.py) share it. They must not change its files.
@pytest.fixture(scope="session")
def demo_json(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """``kernl-trio demo --fast --json --out DIR``."""
    out = tmp_path_factory.mktemp("demo-json")
    return run_cli(("demo", "--fast", "--json", "--out", str(out)), out)


@pytest.fixture(scope="session")
def demo_text(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """``kernl-trio demo --fast`` in an empty directory: the readable transcript, the
    default --out."""
    cwd = tmp_path_factory.mktemp("demo-text")
    with contextlib.chdir(cwd):
        return run_cli(("demo", "--fast"), cwd / "kernl-trio-demo-out")


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
