"""``kernl-trio demo`` in process: the conversation, its log and its WAV files."""

from __future__ import annotations

import io
import math
import re
import wave
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
import trio.testing

from kernl_trio.channels.wav import write_wav
from kernl_trio.demo import DemoOptions, main
from kernl_trio.demo.run import _run
from kernl_trio.demo.script import TRANSCRIPTS, USER_TURNS, server_script, user_audio
from kernl_trio.errors import ConfigurationError
from kernl_trio.testing.embedded import EmbeddedServer

from .conftest import DemoRun


def _wav_ms(path: Path) -> float:
    with wave.open(str(path), "rb") as reader:
        return reader.getnframes() * 1000 / reader.getframerate()


def _run_json(out: Path) -> tuple[int, list[dict[str, Any]]]:
    stream = io.StringIO()
    status = main(DemoOptions(out=out, fast=True, json=True), out=stream)
    return status, [orjson.loads(line) for line in stream.getvalue().splitlines()]


def check_demo_log(lines: list[dict[str, Any]], out: Path) -> dict[str, Any]:
    """What any run of the demo must show; returns the summary."""
    summary = lines[-1]
    assert summary["type"] == "summary" and summary["finished"] is True
    events = [line for line in lines if "t" in line]
    assert [e["text"] for e in events if e["type"] == "user"] == list(TRANSCRIPTS)

    calls = [e for e in events if e["type"] == "tool" and e["event"] == "call"]
    outputs = [e for e in events if e["type"] == "tool" and e["event"] == "output"]
    cancelled = [e for e in events if e["type"] == "tool" and e["event"] == "cancelled"]
    assert [orjson.loads(c["arguments"]) for c in calls] == [{"city": "Paris"}, {"city": "Rome"}]
    assert [o["call_id"] for o in outputs] == [calls[0]["call_id"]]
    assert orjson.loads(outputs[0]["output"])["temp_c"] == 18
    assert outputs[0]["seconds"] == 1.5
    assert [c["call_id"] for c in cancelled] == [calls[1]["call_id"]]

    # Two barge-ins, each truncating what was playing at what was heard; the second also
    # cancels the Rome lookup.
    barge_ins = [e for e in events if e["type"] == "barge-in"]
    truncated = [e for e in events if e["type"] == "server"]
    assert len(barge_ins) == 2
    assert [b["cancelled_call_ids"] for b in barge_ins] == [[], [calls[1]["call_id"]]]
    assert [(t["item_id"], t["audio_end_ms"]) for t in truncated] == [
        (b["item_id"], b["played_ms"]) for b in barge_ins
    ]
    items = summary["items"]
    for barge_in in barge_ins:
        item = items[barge_in["item_id"]]
        assert 0 < barge_in["played_ms"] < item["received_ms"]
        assert math.floor(item["played_ms"]) == barge_in["played_ms"]
    for item_id, item in items.items():
        if item_id not in {b["item_id"] for b in barge_ins}:
            assert item["played_ms"] == item["received_ms"]  # played to the end

    # The files: everything received, and exactly what was played.
    assert _wav_ms(out / "assistant.wav") == summary["assistant_ms"]
    assert summary["assistant_ms"] == pytest.approx(sum(i["received_ms"] for i in items.values()))
    assert _wav_ms(out / "played.wav") == summary["played_ms"]
    assert summary["played_ms"] == pytest.approx(
        sum(i["played_ms"] for i in items.values()), abs=0.1
    )
    assert summary["played_ms"] < summary["assistant_ms"]
    return summary


def _lines(run: DemoRun) -> list[dict[str, Any]]:
    assert run.status == 0, run.stderr
    return [orjson.loads(line) for line in run.stdout.splitlines()]


def test_the_demo_shows_a_tool_call_and_two_barge_ins(demo_json: DemoRun) -> None:
    summary = check_demo_log(_lines(demo_json), demo_json.out)
    assert _wav_ms(demo_json.out / "user.wav") == pytest.approx(
        USER_TURNS[-1].at_s * 1000 + len(USER_TURNS[-1].text) * 60 + 1500
    )
    assert (summary["responses"], summary["tool_calls"]) == (4, 2)
    assert 12 < summary["conversation_s"] < 20


def test_the_demo_is_deterministic_under_fast(tmp_path: Path, demo_json: DemoRun) -> None:
    # A second run, through the library this time, against the command line's.
    status, second = _run_json(tmp_path)
    assert status == 0

    def timeline(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [line for line in lines if line["type"] not in ("note", "summary")]

    assert timeline(_lines(demo_json)) == timeline(second)
    assert (demo_json.out / "played.wav").read_bytes() == (tmp_path / "played.wav").read_bytes()


def test_the_readable_transcript(demo_text: DemoRun) -> None:
    assert demo_text.status == 0, demo_text.stderr
    text = demo_text.stdout
    assert "embedded realtime server at ws://127.0.0.1:" in text
    assert "user       What's the weather in Paris?" in text
    assert "tool       call get_weather" in text
    assert text.count("s] barge-in ") == 2 and "truncate sent" in text
    assert "get_weather cancelled" in text
    assert "summary" in text and "played.wav" in text and "assistant.wav" in text


def test_a_user_recording_can_replace_the_generated_one(tmp_path: Path) -> None:
    recording = tmp_path / "mine.wav"
    write_wav(recording, user_audio())
    stream = io.StringIO()
    assert (
        main(DemoOptions(out=tmp_path / "out", fast=True, json=True, input=recording), out=stream)
        == 0
    )
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    check_demo_log(lines, tmp_path / "out")
    assert not (tmp_path / "out" / "user.wav").exists()


def test_url_without_a_key_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    options = DemoOptions(out=tmp_path, url="wss://api.openai.com/v1/realtime")
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        main(options)


@pytest.mark.trio
async def test_the_same_agent_runs_against_a_server_given_by_url(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # What --url does, with a server of our own in the same virtual time.
    write_wav(tmp_path / "user.wav", user_audio())
    async with trio.open_nursery() as nursery:
        server = EmbeddedServer(server_script(), transcripts=TRANSCRIPTS)
        await nursery.start(server.run)
        stream = io.StringIO()
        options = DemoOptions(out=tmp_path, fast=True, url=server.url)
        result = await _run(options, tmp_path / "user.wav", stream)
        nursery.cancel_scope.cancel()
    assert result.finished and result.url == server.url
    assert len(result.log.interruptions) == 2 and result.log.cancelled_calls
    assert f"realtime server at {server.url}" in stream.getvalue()


def test_docs_sample_output_is_what_demo_fast_prints(demo_text: DemoRun) -> None:
    assert demo_text.status == 0, demo_text.stderr
    docs = (Path(__file__).parent.parent / "docs" / "demo.md").read_text()
    sample = docs.split("```\nkernl-trio demo: embedded", 1)[1].split("```", 1)[0]

    def normal(text: str) -> str:
        text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", text)
        return re.sub(r"in [\d.]+ s of wall time", "in N s of wall time", text)

    assert normal("kernl-trio demo: embedded" + sample) == normal(demo_text.stdout)
    assert demo_text.out.name == "kernl-trio-demo-out" and demo_text.out.is_dir()
