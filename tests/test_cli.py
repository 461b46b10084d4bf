"""The command line, as users run it: ``python -m kernl_trio demo|serve|twilio``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio

from kernl_trio.agent import RealtimeAgent
from kernl_trio.protocol import ToolCall, TranscriptInput, TranscriptOutput
from kernl_trio.providers.openai import OpenAIRealtimeModel
from kernl_trio.session import ToolOutput, open_session
from kernl_trio.tools import tool

from .test_demo import check_demo_log

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kernl_trio", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
    )


def test_demo_fast_json(tmp_path: Path) -> None:
    done = _cli("demo", "--fast", "--json", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    lines: list[dict[str, Any]] = [orjson.loads(line) for line in done.stdout.splitlines()]
    check_demo_log(lines, tmp_path)  # the tool call, both barge-ins, the WAV durations


def test_demo_fast_prints_a_readable_transcript(tmp_path: Path) -> None:
    done = _cli("demo", "--fast", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "tool       call get_weather" in out and "get_weather returned after 1.50 s" in out
    assert out.count("s] barge-in ") == 2 and "truncate sent (audio_end_ms=" in out
    assert "server     truncated item_" in out
    for name in ("user.wav", "assistant.wav", "played.wav"):
        assert (tmp_path / name).is_file()


def test_help_lists_the_commands() -> None:
    done = _cli("--help")
    assert done.returncode == 0
    for command in ("demo", "serve", "twilio"):
        assert command in done.stdout
    assert "--fast" in _cli("demo", "--help").stdout


@pytest.fixture
def served() -> Iterator[str]:
    """``kernl-trio serve`` in a subprocess; yields its URL, then stops it with Ctrl-C."""
    process = subprocess.Popen(
        [sys.executable, "-m", "kernl_trio", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on ws://127.0.0.1:" in line, process.stderr
        yield line.rsplit(" ", 1)[1].strip()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_serve_accepts_a_session(served: str) -> None:
    @tool
    async def get_weather(city: str) -> dict[str, Any]:
        """The weather.

        Args:
            city: Where.
        """
        return {"city": city, "temp_c": 9, "conditions": "windy", "wind": "east"}

    agent = RealtimeAgent("w", name="W", instructions="Weather.", tools=[get_weather])
    seen: list[Any] = []

    async def talk() -> None:
        model = OpenAIRealtimeModel(base_url=served)
        with trio.fail_after(20):
            async with open_session(agent, model=model) as session:
                async with session.events() as events:
                    await session.send_message("How is the weather in Oslo?")
                    async for event in events:
                        if isinstance(event, ToolCall | ToolOutput | TranscriptOutput):
                            seen.append(event)
                        if isinstance(event, TranscriptOutput) and "Oslo it is" in event.text:
                            break
                        assert not isinstance(event, TranscriptInput)

    trio.run(talk)
    call = next(e for e in seen if isinstance(e, ToolCall))
    assert (call.name, orjson.loads(call.arguments)) == ("get_weather", {"city": "Oslo"})
    said = [e.text for e in seen if isinstance(e, TranscriptOutput)]
    assert said[0] == "Let me check the weather in Oslo."
    assert said[1].startswith("Right now in Oslo it is 9 degrees and windy")


def test_the_readme_session_ends_against_kernl_trio_serve(served: str, tmp_path: Path) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    sample = readme.split("## A session", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    script = tmp_path / "weather.py"
    script.write_text(sample)
    env = {**ENV, "REALTIME_URL": served}
    env.pop("OPENAI_API_KEY", None)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    expected = readme.split("python3 weather.py` prints\n\n```\n", 1)[1].split("```", 1)[0]
    assert done.stdout == expected


def test_serve_on_ipv6_prints_a_bracketed_url_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "kernl_trio", "serve", "--host", "::1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert re.search(r"listening on ws://\[::1\]:\d+/v1/realtime$", line.strip()), line
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
