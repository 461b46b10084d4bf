"""The peer: OpenAI Agents SDK realtime (asyncio), ``RealtimeRunner`` / ``RealtimeSession``.

Needs the ``openai-agents`` package; exits with ``{"skipped": ...}`` when it is missing. Every
``openai-agents`` release for ``openai`` 3.x pins ``websockets<17``, which cannot share an
environment with ``websockets>=17`` (kernl_trio's trio transport), so the runner can start this
driver with another interpreter (``--peer-python``, e.g. ``.venv-peer/bin/python``).

Tracing is disabled (it would export to the network); the session has no playback tracker, so
the SDK assumes real-time playback for ``audio_end_ms``, like the kernl_trio driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
from collections.abc import Callable
from typing import Any

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

NAME = "openai-agents"
os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")

try:
    from agents import function_tool, set_tracing_disabled
    from agents.realtime import RealtimeAgent, RealtimeRunner
    from agents.realtime.model_inputs import RealtimeModelSendRawMessage
    from agents.realtime.openai_realtime import OpenAIRealtimeWebSocketModel
except ImportError:  # pragma: no cover - depends on the environment
    RealtimeAgent = None


async def open_peer(url: str, agent: Any) -> Any:
    runner = RealtimeRunner(agent, model=OpenAIRealtimeWebSocketModel())
    return await runner.run(model_config={"url": url, "headers": {}})


async def response_create(session: Any) -> None:
    await session.model.send_event(RealtimeModelSendRawMessage(message={"type": "response.create"}))


def agent_without_tools() -> Any:
    return RealtimeAgent(name="Bench", instructions="Benchmark agent.")


async def w1(url: str, expected: int) -> dict[str, Any]:
    burst = Burst(expected)
    session = await open_peer(url, agent_without_tools())
    async with session:
        await response_create(session)
        async for event in session:
            if event.type == "audio" and burst.delivered(event.audio.data):
                break
    return burst.result()


async def w2(url: str, turns: int) -> dict[str, Any]:
    barge = BargeIn(turns)
    session = await open_peer(url, agent_without_tools())
    done = 0
    async with session:
        await response_create(session)
        async for event in session:
            if event.type == "audio":
                barge.delivered(event.audio.data)
            elif event.type == "audio_interrupted":
                barge.interrupted(turn_of(event.item_id))
            elif event.type == "raw_model_event" and event.data.type == "turn_ended":
                done += 1
                if done >= turns:
                    break
    return barge.result()


async def w3(url: str, sessions: int) -> dict[str, Any]:
    conc = Concurrency()
    everyone = asyncio.Event()
    chunk = bytes(DELTA_BYTES)
    loop = asyncio.get_running_loop()

    async def appends(session: Any, index: int) -> None:
        start = loop.time() + (index % DELTA_MS) / 1000
        k = 0
        while True:
            delay = start + k * DELTA_MS / 1000 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await session.send_audio(chunk)
            conc.appends += 1
            k += 1

    async def one(index: int) -> None:
        try:
            await stream(index)
        except Exception as exc:
            conc.failed(exc, sessions, everyone)

    async def stream(index: int) -> None:
        session = await open_peer(url, agent_without_tools())
        async with session:
            conc.joined(sessions, everyone)
            await everyone.wait()
            await response_create(session)
            sender = asyncio.create_task(appends(session, index))
            try:
                async for event in session:
                    if event.type == "audio":
                        conc.delivered(event.audio.data)
                    elif event.type == "raw_model_event" and event.data.type == "turn_ended":
                        break
            finally:
                sender.cancel()

    await asyncio.gather(*(one(i) for i in range(sessions)))
    conc.finish()
    return conc.result(sessions)


async def w4(url: str, tool_seconds: float, observe: float) -> dict[str, Any]:
    slow = SlowTool(tool_seconds)

    @function_tool
    async def slow_tool() -> str:
        """Looks something up slowly (the benchmark's tool: it sleeps)."""
        return await slow.run(asyncio.sleep)

    agent = RealtimeAgent(name="Bench", instructions="Benchmark.", tools=[slow_tool])
    seen: list[list[Any]] = []
    session = await open_peer(url, agent)
    async with session:
        await response_create(session)

        async def watch() -> None:
            async for event in session:
                t = now_ns()
                if event.type == "audio_interrupted":
                    seen.append([t, "interrupted", event.item_id])
                elif event.type in ("tool_start", "tool_end"):
                    seen.append([t, event.type.replace("_", "."), getattr(event, "output", None)])

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watch(), observe)
    return {"times": slow.times, "events": seen}


async def _mem_phase(url: str, sessions: int, measure: Callable[[], int]) -> int:
    gc.collect()
    base = measure()
    opened = []
    for _ in range(0, sessions, 50):  # open in batches: the SDK connects one by one anyway
        batch = [
            open_peer(url, agent_without_tools()) for _ in range(min(50, sessions - len(opened)))
        ]
        for session in await asyncio.gather(*batch):
            await session.__aenter__()
            opened.append(session)
    gc.collect()
    used = measure()
    for session in opened:
        await session.close()
    return round((used - base) / sessions)


async def mem(url: str, sessions: int) -> dict[str, Any]:
    return await per_session_memory(lambda measure: _mem_phase(url, sessions, measure), sessions)


def main() -> None:
    args = parse_args("openai-agents realtime driver")
    if RealtimeAgent is None:
        emit(NAME, args.workload, {"skipped": "openai-agents is not installed"})
        return
    set_tracing_disabled(True)

    async def run() -> dict[str, Any]:
        async with asyncio.timeout(args.timeout):
            if args.workload == "w1":
                return await w1(args.url, args.deltas)
            if args.workload == "w2":
                return await w2(args.url, args.turns)
            if args.workload == "w3":
                return await w3(args.url, args.sessions)
            if args.workload == "w4":
                return await w4(args.url, args.tool_seconds, args.observe_seconds)
            return await mem(args.url, args.sessions)

    emit(NAME, args.workload, asyncio.run(run()))


if __name__ == "__main__":
    main()
