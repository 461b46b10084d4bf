"""``kernl-trio demo``: a voice session with a tool call and two barge-ins, no key needed.

It starts the embedded realtime server on 127.0.0.1 (a random port), points an
:class:`~kernl_trio.providers.openai.OpenAIRealtimeModel` at it and runs the weather agent
through a real session over a real WebSocket. The user is a WAV file sent as microphone audio,
paced in trio time; the assistant's audio is "played" in trio time by a
:class:`~kernl_trio.channels.wav.WavChannel`. With ``fast`` all of it runs under
``trio.testing.MockClock(autojump_threshold=0)``: the same conversation, the same timestamps,
in a fraction of a second.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import attrs
import orjson
import trio

from .._errors import collapse
from .._net import api_key_missing
from ..channels.wav import WavChannel, write_wav
from ..errors import ConfigurationError
from ..local.embedded import EmbeddedServer
from ..protocol import PCM16_24K
from ..providers.openai import OpenAIRealtimeModel
from ..session import open_session
from .agent import weather_agent
from .report import DemoLog
from .script import SESSION_CONFIG, TRANSCRIPTS, USER_TURNS, server_script, user_audio

QUIET_S = 0.75
"""The conversation is over once nothing happened for this long after the input ended."""

SPARE_S = 30.0
"""How long past the end of the input the demo waits for the conversation to settle."""


@attrs.frozen
class DemoOptions:
    out: Path = Path("kernl-trio-demo-out")
    fast: bool = False
    json: bool = False
    url: str | None = None
    input: Path | None = None


@attrs.define
class DemoResult:
    log: DemoLog
    channel: WavChannel
    url: str
    finished: bool
    conversation_s: float
    stopped: bool = False


def main(options: DemoOptions, out: TextIO | None = None) -> int:
    """Run the demo; the exit status (0 when the conversation ran to its end, 1 when it did
    not settle, 130 when stopped by Ctrl-C).

    Raises :class:`~kernl_trio.errors.ConfigurationError` for a remote ``url`` without
    ``OPENAI_API_KEY`` and single exceptions (e.g. :class:`~kernl_trio.errors.HandshakeFailed`)
    for a server that cannot be reached; the command line turns them into messages.
    """
    stream = out if out is not None else sys.stdout
    if options.url is not None and api_key_missing(options.url):
        raise ConfigurationError(
            f"--url {options.url} needs OPENAI_API_KEY in the environment "
            "(a local server such as `kernl-trio serve` needs none)"
        )
    options.out.mkdir(parents=True, exist_ok=True)
    user_path = options.input
    if user_path is None:
        user_path = options.out / "user.wav"
        write_wav(user_path, user_audio(PCM16_24K), PCM16_24K)
    clock = None
    if options.fast:
        from trio.testing import MockClock  # here: it imports pytest when that is installed

        clock = MockClock(autojump_threshold=0)
    began = time.perf_counter()  # wall time, for the report only
    try:
        result = trio.run(_main, options, user_path, stream, clock=clock)
    except BaseExceptionGroup as group:
        raise collapse(group) from None
    wall = time.perf_counter() - began
    assistant_path = options.out / "assistant.wav"
    write_wav(assistant_path, bytes(result.log.assistant_audio), PCM16_24K)
    _summary(result, options, user_path, assistant_path, wall)
    if result.stopped:
        return 130
    return 0 if result.finished else 1


async def _main(options: DemoOptions, user_path: Path, out: TextIO) -> DemoResult:
    """:func:`_run`, stopped early (files and summary still written) by Ctrl-C."""
    stop = trio.Event()
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                async for _ in signals:
                    stop.set()
                    return

            nursery.start_soon(watch)
            result = await _run(options, user_path, out, stop)
            nursery.cancel_scope.cancel()
    return result


async def _run(
    options: DemoOptions, user_path: Path, out: TextIO, stop: trio.Event | None = None
) -> DemoResult:
    start = trio.current_time()
    log = DemoLog(start=start, json=options.json, out=out)
    channel = WavChannel(user_path, None, played_path=options.out / "played.wav")
    async with trio.open_nursery() as nursery:
        if options.url is None:
            server = EmbeddedServer(server_script(), transcripts=TRANSCRIPTS)
            await nursery.start(server.run)
            url = server.url
            log.note(f"kernl-trio demo: embedded realtime server at {url} (no network, no key)")
        else:
            url = options.url
            log.note(f"kernl-trio demo: realtime server at {url}")
        log.note(
            f"user audio: {user_path} ({channel.input_ms / 1000:.1f} s"
            + (f", {len(USER_TURNS)} utterances)" if options.input is None else ")"),
            url=url,
        )
        model = OpenAIRealtimeModel(base_url=url)
        async with open_session(weather_agent, model=model, channel=channel) as session:
            nursery.start_soon(log.consume, session.events())
            log.emit("session", f"{session.id} connected", session_id=session.id)
            await session.update_config(SESSION_CONFIG)
            nursery.start_soon(channel.feed)
            if stop is None:
                stop = trio.Event()
            finished = await _wait_until_over(log, channel, stop)
            ended = log.now()
        await log.done.wait()
        nursery.cancel_scope.cancel()  # the embedded server
    return DemoResult(log, channel, url, finished, ended, stop.is_set())


async def _wait_until_over(log: DemoLog, channel: WavChannel, stop: trio.Event) -> bool:
    """Wait for the input to end and the conversation to settle; False on time-out or stop."""
    await trio.lowlevel.checkpoint()
    with trio.move_on_after(channel.input_ms / 1000 + SPARE_S):
        while not channel.input_done.is_set():
            if stop.is_set():
                log.emit("stopped", "stopped by the user", event="stopped")
                return False
            await trio.sleep(0.05)
        while True:
            if stop.is_set():
                log.emit("stopped", "stopped by the user", event="stopped")
                return False
            now = trio.current_time()
            quiet = (
                not log.user_speaking
                and not log.open_responses
                and log.tools_running == 0
                and now - log.last_event_at >= QUIET_S
                and now - channel.speaker_free_at >= QUIET_S
            )
            if quiet:
                return True
            await trio.sleep(0.05)
    log.emit("timeout", "the conversation did not settle; giving up", event="timeout")
    return False


def _summary(
    result: DemoResult, options: DemoOptions, user_path: Path, assistant_path: Path, wall: float
) -> None:
    log, channel = result.log, result.channel
    fmt = PCM16_24K
    items = {
        item_id: {
            "received_ms": round(log.received_ms(item_id), 3),
            "played_ms": round(channel.played_ms(item_id), 3),
        }
        for item_id in log.received_bytes
    }
    summary: dict[str, Any] = {
        "type": "summary",
        "finished": result.finished,
        "stopped": result.stopped,
        "user_utterances": len(log.user_texts),
        "responses": len(log.responses),
        "tool_calls": len(log.calls),
        "tool_calls_completed": len(log.completed_calls),
        "tool_calls_cancelled": len(log.cancelled_calls),
        "interruptions": log.interruptions,
        "truncations": log.truncations,
        "errors": log.errors,
        "items": items,
        "files": {
            "user": str(user_path),
            "assistant": str(assistant_path),
            "played": str(options.out / "played.wav"),
        },
        "assistant_ms": round(fmt.duration_ms(len(log.assistant_audio)), 3),
        "played_ms": round(fmt.duration_ms(len(channel.played_audio)), 3),
        "conversation_s": result.conversation_s,
    }
    out = log.out
    if options.json:
        print(orjson.dumps(summary).decode(), file=out, flush=True)
        return
    truncated = ", ".join(
        f"{i['item_id']} at {i['played_ms']} ms" for i in log.interruptions if i["item_id"]
    )
    mode = "virtual time (--fast)" if options.fast else "real time"
    lines = [
        "",
        "summary",
        f"  user utterances      {len(log.user_texts)}",
        f"  assistant responses  {len(log.responses)}",
        f"  tool calls           {len(log.calls)}: {len(log.completed_calls)} completed, "
        f"{len(log.cancelled_calls)} cancelled by a barge-in",
        f"  interruptions        {len(log.interruptions)}"
        + (f": truncated {truncated}" if truncated else ""),
        f"  {assistant_path}  {summary['assistant_ms'] / 1000:6.2f} s  "
        "everything the assistant said",
        f"  {options.out / 'played.wav'}     {summary['played_ms'] / 1000:6.2f} s  "
        "what the user actually heard",
        f"  {summary['conversation_s']:.2f} s of conversation in {wall:.2f} s of wall time, {mode}",
    ]
    if log.errors:
        lines.append(f"  server errors        {len(log.errors)}: {'; '.join(log.errors)}")
    if result.stopped:
        lines.append("  stopped early (Ctrl-C)")
    elif not result.finished:
        lines.append("  the conversation did not settle in time")
    print("\n".join(lines), file=out, flush=True)


__all__ = ["DemoOptions", "DemoResult", "main"]
