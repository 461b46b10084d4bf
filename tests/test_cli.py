"""The command line, as users run it: ``python -m kernl_trio demo|serve|twilio``.

Commands that read their output run in-process through ``kernl_trio.cli.main`` (the demo runs
are shared with tests/test_demo.py, see tests/conftest.py); what a real signal stops runs as a
subprocess.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import runpy
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
from kernl_trio.cli import main
from kernl_trio.protocol import ToolCall, TranscriptInput, TranscriptOutput
from kernl_trio.providers.openai import OpenAIRealtimeModel
from kernl_trio.session import ToolOutput, open_session
from kernl_trio.tools import tool

from .conftest import DemoRun
from .test_demo import check_demo_log

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def test_demo_fast_json(demo_json: DemoRun) -> None:
    assert demo_json.argv == ("demo", "--fast", "--json", "--out", str(demo_json.out))
    assert demo_json.status == 0, demo_json.stderr
    lines: list[dict[str, Any]] = [orjson.loads(line) for line in demo_json.stdout.splitlines()]
    check_demo_log(lines, demo_json.out)  # the tool call, both barge-ins, the WAV durations


def test_demo_fast_prints_a_readable_transcript(demo_text: DemoRun) -> None:
    assert demo_text.argv == ("demo", "--fast")  # the default --out
    assert demo_text.status == 0, demo_text.stderr
    out = demo_text.stdout
    assert "tool       call get_weather" in out and "get_weather returned after 1.50 s" in out
    assert out.count("s] barge-in ") == 2 and "truncate sent (audio_end_ms=" in out
    assert "server     truncated item_" in out
    for name in ("user.wav", "assistant.wav", "played.wav"):
        assert (demo_text.out / name).is_file()


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("demo", "serve", "twilio"):
        assert command in out
    assert main(["demo", "--help"]) == 0
    assert "--fast" in capsys.readouterr().out


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    """``kernl-trio serve`` in a subprocess; yields its URL, then stops it with Ctrl-C.

    One server for the module: the tests only talk to it, and stopping it is checked after
    the last one."""
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
    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REALTIME_URL", served)
        patch.delenv("OPENAI_API_KEY", raising=False)
        with contextlib.redirect_stdout(stdout):
            runpy.run_path(str(script), run_name="__main__")  # `python3 weather.py`, in-process
    expected = readme.split("python3 weather.py` prints\n\n```\n", 1)[1].split("```", 1)[0]
    assert stdout.getvalue() == expected


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


def test_the_demo_stopped_by_a_signal_writes_its_files_and_exits_130(tmp_path: Path) -> None:
    # SIGTERM: it goes through the handler Ctrl-C has, so this is the Ctrl-C path as well
    process = subprocess.Popen(
        [sys.executable, "-m", "kernl_trio", "demo", "--out", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:  # real time: stop it once the session is up
            if "connected" in line:
                break
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, err
    assert err == "" and "stopped early (Ctrl-C)" in out
    assert (tmp_path / "assistant.wav").exists() and (tmp_path / "played.wav").exists()


class ClosedPipe(io.StringIO):
    """Standard output whose reader went away after the first line (``| head -1``)."""

    def write(self, text: str) -> int:
        if "\n" in self.getvalue():
            raise BrokenPipeError(32, "Broken pipe")
        return super().write(text)


def test_the_demo_piped_into_head_stops_quietly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stdout = ClosedPipe()
    monkeypatch.setattr(sys, "stdout", stdout)
    status = main(["demo", "--fast", "--out", str(tmp_path)])
    assert status == 141  # as a program SIGPIPE ended
    assert stdout.getvalue().startswith("kernl-trio demo:") and stdout.getvalue().count("\n") == 1
    assert capsys.readouterr().err == ""  # not "unexpected error: BrokenPipeError"
