"""kernl_trio through its public API: ``open_session``, ``session.events()``, ``@tool``.

Each transport is passed explicitly to ``OpenAIRealtimeModel`` (whatever its default is), from
the public :mod:`kernl_trio.transports`: ``--transport trio-websocket`` gives
``connector=connect_trio_websocket``, ``sansio`` ``connect_websockets_sansio``. The session has no
channel: the application reads audio from ``session.events()`` (the session assumes real-time
playback to compute ``audio_end_ms``, as the peer does without a playback tracker).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import trio

from kernl_trio.agent import RealtimeAgent
from kernl_trio.protocol import (
    AudioOutputDelta,
    ResponseDone,
    ResponseInterrupted,
    SpeechStarted,
    ToolCancelled,
)
from kernl_trio.providers.openai import OpenAIRealtimeModel
from kernl_trio.session import RealtimeSession, ToolOutput, open_session
from kernl_trio.tools import tool
from kernl_trio.transports import (
    WebSocketConnector,
    connect_trio_websocket,
    connect_websockets_sansio,
)

from ._common import (
    DELTA_BYTES,
    DELTA_MS,
    BargeIn,
    Burst,
    Concurrency,
    SlowTool,
    emit,
    now_ns,
    parse_args,
    per_session_memory,
    turn_of,
)

TRANSPORTS: dict[str, WebSocketConnector] = {
    "sansio": connect_websockets_sansio,
    "trio-websocket": connect_trio_websocket,
}


def make_model(url: str, transport: str) -> OpenAIRealtimeModel:
    connector = TRANSPORTS.get(transport)
    if connector is None:
        raise SystemExit(f"unknown transport {transport!r} (one of {', '.join(TRANSPORTS)})")
    return OpenAIRealtimeModel("gpt-realtime", base_url=url, connector=connector)


AGENT = RealtimeAgent("bench", name="Bench", instructions="Benchmark agent.")


async def w1(model: OpenAIRealtimeModel, expected: int, batched: bool) -> dict[str, Any]:
    burst = Burst(expected)
    async with open_session(AGENT, model=model) as session:
        if batched:  # one list per receive: everything published since the last one
            async with session.event_batches() as batches:
                await session.create_response()
                async for batch in batches:
                    if any(
                        isinstance(event, AudioOutputDelta) and burst.delivered(event.audio)
                        for event in batch
                    ):
                        break
        else:
            # W1 is one flood of `expected` deltas: a consumer taking one event per
            # scheduler pass holds most of it at once, so its backlog limit fits the flood.
            async with session.events(max_backlog=expected + 1024) as events:
                await session.create_response()
                async for event in events:
                    if isinstance(event, AudioOutputDelta) and burst.delivered(event.audio):
                        break
    return burst.result()


async def w2(model: OpenAIRealtimeModel, turns: int) -> dict[str, Any]:
    barge = BargeIn(turns)
    speech_started = 0
    async with open_session(AGENT, model=model) as session, session.events() as events:
        await session.create_response()
        done = 0
        async for event in events:
            if isinstance(event, AudioOutputDelta):
                barge.delivered(event.audio)
            elif isinstance(event, ResponseInterrupted):
                barge.interrupted(turn_of(event.response_id))
            elif isinstance(event, SpeechStarted):
                barge.speech_started(speech_started)
                speech_started += 1
            elif isinstance(event, ResponseDone):
                done += 1
                if done >= turns:
                    break
        stats = session.statistics()
    return {
        **barge.result(),
        "speech_started_seen": speech_started,
        "late_dropped": stats.late_audio_dropped,
        "interruptions": stats.interruptions,
    }


async def w3(
    model: OpenAIRealtimeModel, sessions: int, batched: bool = False, appending: bool = True
) -> dict[str, Any]:
    conc = Concurrency()
    everyone = trio.Event()
    chunk = bytes(DELTA_BYTES)

    async def appends(session: RealtimeSession, index: int) -> None:
        start = trio.current_time() + (index % DELTA_MS) / 1000
        k = 0
        while True:
            await trio.sleep_until(start + k * DELTA_MS / 1000)
            await session.send_audio(chunk)
            conc.appends += 1
            k += 1

    async def one(index: int) -> None:
        try:
            await stream(index)
        except Exception as exc:
            conc.failed(exc, sessions, everyone)

    async def stream(index: int) -> None:
        async with open_session(AGENT, model=model) as session:
            conc.joined(sessions, everyone)
            await everyone.wait()
            async with trio.open_nursery() as nursery:
                if appending:
                    nursery.start_soon(appends, session, index)
                if batched:
                    await read_batches(session)
                else:
                    await read_events(session)
                nursery.cancel_scope.cancel()

    async def read_events(session: RealtimeSession) -> None:
        async with session.events() as events:
            await session.create_response()
            async for event in events:
                if isinstance(event, AudioOutputDelta):
                    conc.delivered(event.audio)
                elif isinstance(event, ResponseDone):
                    return

    async def read_batches(session: RealtimeSession) -> None:
        async with session.event_batches() as batches:
            await session.create_response()
            async for batch in batches:
                for event in batch:
                    if isinstance(event, AudioOutputDelta):
                        conc.delivered(event.audio)
                    elif isinstance(event, ResponseDone):
                        return

    async with trio.open_nursery() as nursery:
        for index in range(sessions):
            nursery.start_soon(one, index)
    conc.finish()
    return conc.result(sessions)


async def w4(url: str, transport: str, tool_seconds: float, observe: float) -> dict[str, Any]:
    slow = SlowTool(tool_seconds)

    @tool
    async def slow_tool() -> str:
        """Looks something up slowly (the benchmark's tool: it sleeps)."""
        return await slow.run(trio.sleep)

    agent = RealtimeAgent("bench", name="Bench", instructions="Benchmark.", tools=[slow_tool])
    model = make_model(url, transport)
    seen: list[list[Any]] = []
    async with open_session(agent, model=model) as session, session.events() as events:
        await session.create_response()
        with trio.move_on_after(observe):
            async for event in events:
                t = now_ns()
                if isinstance(event, SpeechStarted):
                    seen.append([t, "speech.started", None])
                elif isinstance(event, ResponseInterrupted):
                    seen.append([t, "interrupted", list(event.cancelled_call_ids)])
                elif isinstance(event, ToolCancelled):
                    seen.append([t, "tool.cancelled", event.call_id])
                elif isinstance(event, ToolOutput):
                    seen.append([t, "tool.output", event.output])
    return {"times": slow.times, "events": seen}


async def _mem_phase(model: OpenAIRealtimeModel, sessions: int, measure: Callable[[], int]) -> int:
    gc.collect()
    base = measure()
    opened = 0
    everyone, release = trio.Event(), trio.Event()

    async def one() -> None:
        nonlocal opened
        async with open_session(AGENT, model=model):
            opened += 1
            if opened == sessions:
                everyone.set()
            await release.wait()

    async with trio.open_nursery() as nursery:
        for _ in range(sessions):
            nursery.start_soon(one)
        await everyone.wait()
        gc.collect()
        used = measure()
        release.set()
    return round((used - base) / sessions)


async def mem(model: OpenAIRealtimeModel, sessions: int) -> dict[str, Any]:
    return await per_session_memory(lambda measure: _mem_phase(model, sessions, measure), sessions)


def main() -> None:
    args = parse_args("kernl_trio driver")
    name = f"kernl-{args.transport}" + ("-batched" if args.batched else "")

    async def run() -> dict[str, Any]:
        model = make_model(args.url, args.transport)
        with trio.fail_after(args.timeout):
            if args.workload == "w1":
                return await w1(model, args.deltas, args.batched)
            if args.workload == "w2":
                return await w2(model, args.turns)
            if args.workload == "w3":
                return await w3(model, args.sessions, args.batched, not args.no_appends)
            if args.workload == "w4":
                return await w4(args.url, args.transport, args.tool_seconds, args.observe_seconds)
            return await mem(model, args.sessions)

    emit(name, args.workload, trio.run(run))


if __name__ == "__main__":
    main()
