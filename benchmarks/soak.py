"""Soak: many concurrent sessions through minutes of conversation, in virtual time.

Run from the repository root:

    python -m benchmarks.soak                       # 500 sessions x 10 minutes
    python -m benchmarks.soak --sessions 50 --minutes 2

One process runs the scripted GA server (real WebSockets on 127.0.0.1) and ``--sessions``
sessions against it, under trio's autojump ``MockClock``: ten minutes of conversation take
as long as the CPU needs, not ten minutes. Each session repeats, every ``--turn-every``
seconds of trio time, one of three turns: a spoken answer played to the end (2 s of audio
through a ``VirtualChannel``), a tool call and its follow-up answer, and a barge-in (the
server hears the user 1 s into a 3 s answer, in real time).

Memory is sampled once every session has finished its first minute and again at the last
minute, before any session closes: the growth of RSS and of tracemalloc's traced total,
divided by sessions x minutes between the samples, is the growth per session-minute. After
every session has closed: the live tasks and open file descriptors must be back to where
they were before the first session opened. The script exits non-zero when they are not, or
(with tracemalloc) when kernl_trio's own code grew by more than ``--max-library-growth``
bytes per session-minute.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import tracemalloc
from typing import Any

import trio
import trio.testing

from kernl_trio import RealtimeAgent, open_session, tool
from kernl_trio.protocol import ResponseDone, ResponseInterrupted
from kernl_trio.providers.openai import OpenAIRealtimeModel
from kernl_trio.testing import (
    AudioReply,
    Reply,
    ResponseRequest,
    ScriptedServer,
    ToolCallReply,
    VirtualChannel,
)


def responder(request: ResponseRequest) -> Reply:
    if request.tool_outputs():
        return Reply.of(AudioReply("It is sunny.", ms=1000), chunk_ms=100)
    text = request.last_user_text()
    if "weather" in text:
        return Reply.of(ToolCallReply("weather", '{"city": "Paris"}'))
    if "story" in text:
        return Reply.of(AudioReply("Once upon a time.", ms=3000), chunk_ms=100, realtime=True)
    return Reply.of(AudioReply("Four.", ms=2000), chunk_ms=100)


@tool
async def weather(city: str) -> str:
    """The weather in a city."""
    await trio.sleep(0.2)
    return f"sunny in {city}"


AGENT = RealtimeAgent(id="soak", name="Soak", instructions="Be brief.", tools=[weather])


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def live_tasks() -> int:
    def walk(task: trio.lowlevel.Task) -> int:
        return 1 + sum(walk(c) for n in task.child_nurseries for c in n.child_tasks)

    root = trio.lowlevel.current_root_task()
    assert root is not None
    return walk(root)


class Soak:
    def __init__(
        self,
        sessions: int,
        minutes: float,
        turn_every: float,
        trace: bool,
        api_key: str = "sk-soak",
    ) -> None:
        self.api_key = api_key
        self.sessions = sessions
        self.minutes = minutes
        self.turn_every = turn_every
        self.trace = trace
        self.turns = {"spoken": 0, "tool": 0, "barge_in": 0}
        self.samples: list[tuple[float, int, int]] = []  # (trio time, rss, traced)
        self.snapshots: list[tracemalloc.Snapshot] = []
        self.first_minute_done = 0
        self.last_minute_reached = 0
        self.sampled_first = trio.Event()
        self.sampled_last = trio.Event()

    def sample(self) -> None:
        gc.collect()
        traced = tracemalloc.get_traced_memory()[0] if self.trace else 0
        if self.trace:
            self.snapshots.append(tracemalloc.take_snapshot())
        self.samples.append((trio.current_time(), rss_bytes(), traced))

    async def talk(self, server: ScriptedServer, index: int) -> None:
        model = OpenAIRealtimeModel(api_key=self.api_key, base_url=server.url)
        channel = VirtualChannel()
        start = trio.current_time()
        end = start + self.minutes * 60
        async with open_session(AGENT, model=model, channel=channel) as session:
            conn = next(c for c in server.connections if c.session["id"] == session.id)
            turn = index  # stagger the kinds of turn across sessions
            minute_one = False
            while trio.current_time() + self.turn_every <= end:
                began = trio.current_time()
                kind = ("spoken", "tool", "barge_in")[turn % 3]
                async with session.events() as events:
                    if kind == "spoken":
                        await session.send_message("What is two plus two?")
                        await _until(events, ResponseDone)
                    elif kind == "tool":
                        await session.send_message("What is the weather?")
                        await _until(events, ResponseDone)
                        await _until(events, ResponseDone)
                    else:
                        await session.send_message("Tell me a story.")
                        await trio.sleep(1)
                        await conn.speech_started()
                        await _until(events, ResponseInterrupted)
                self.turns[kind] += 1
                turn += 1
                # the test harness records everything; a soak keeps only the library's memory
                channel.speaker.played.clear()
                for records in (conn.sent, conn.received, conn.received_at, server.received):
                    records.clear()
                await trio.sleep_until(began + self.turn_every)
                if not minute_one and trio.current_time() - start >= 60:
                    minute_one = True
                    self.first_minute_done += 1
                    if self.first_minute_done == self.sessions:
                        self.sample()
                        self.sampled_first.set()
            self.last_minute_reached += 1
            if self.last_minute_reached == self.sessions:
                self.sample()
                self.sampled_last.set()
            await self.sampled_last.wait()  # nobody closes before the last sample

    async def main(self) -> dict[str, Any]:
        async with trio.open_nursery() as nursery:
            server: ScriptedServer = await nursery.start(ScriptedServer(responder).run)
            gc.collect()
            tasks_before, fds_before = live_tasks(), open_fds()
            wall = time.perf_counter()
            async with trio.open_nursery() as sessions:
                for index in range(self.sessions):
                    sessions.start_soon(self.talk, server, index)
            wall = time.perf_counter() - wall
            await trio.sleep(10)  # the server side notices every close
            gc.collect()
            tasks_after, fds_after = live_tasks(), open_fds()
            server_tasks_left = sum(not c.closed.is_set() for c in server.connections)
            nursery.cancel_scope.cancel()
        (t0, rss0, traced0), (t1, rss1, traced1) = self.samples
        session_minutes = self.sessions * (t1 - t0) / 60
        growth = self.growth_by_file()
        library = sum(size for name, size in growth.items() if _is_library(name))
        return {
            "sessions": self.sessions,
            "virtual_minutes_each": self.minutes,
            "turns": self.turns,
            "wall_seconds": round(wall, 1),
            "sampled_between_virtual_s": (round(t0, 1), round(t1, 1)),
            "rss_mib": (round(rss0 / 2**20, 1), round(rss1 / 2**20, 1)),
            "rss_growth_bytes_per_session_minute": round((rss1 - rss0) / session_minutes, 1),
            "traced_mib": (round(traced0 / 2**20, 2), round(traced1 / 2**20, 2)),
            "traced_growth_bytes_per_session_minute": round(
                (traced1 - traced0) / session_minutes, 1
            ),
            "library_traced_growth_bytes_per_session_minute": round(library / session_minutes, 1),
            "top_growth_by_file": sorted(growth.items(), key=lambda kv: -kv[1])[:8],
            "library_growth_by_line": sorted(
                ((k, v) for k, v in growth.items() if _is_library(k)), key=lambda kv: -abs(kv[1])
            )[:10],
            "tasks_before_after": (tasks_before, tasks_after),
            "fds_before_after": (fds_before, fds_after),
            "server_connections_open_after": server_tasks_left,
        }

    def growth_by_file(self) -> dict[str, int]:
        if len(self.snapshots) < 2:
            return {}
        first, last = self.snapshots
        stats = last.compare_to(first, "lineno")
        return {_where(stat.traceback[0]): stat.size_diff for stat in stats if stat.size_diff}


def _where(frame: tracemalloc.Frame) -> str:
    return f"{frame.filename.split('site-packages/')[-1]}:{frame.lineno}"


def _is_library(filename: str) -> bool:
    """Allocated by kernl_trio's own code, not by the scripted server (``kernl_trio.local``,
    re-exported by ``kernl_trio.testing``), which runs in the same process."""
    return "kernl_trio/" in filename and not any(
        server in filename for server in ("kernl_trio/local/", "kernl_trio/testing/")
    )


async def _until(events: Any, kind: type[Any]) -> None:
    async for event in events:
        if isinstance(event, kind):
            return
    raise RuntimeError(f"the session ended before {kind.__name__}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--turn-every", type=float, default=20.0, help="trio seconds")
    parser.add_argument("--no-tracemalloc", action="store_true")
    parser.add_argument(
        "--max-library-growth",
        type=float,
        default=1024.0,
        help="bytes per session-minute kernl_trio's own code may grow by (with tracemalloc)",
    )
    args = parser.parse_args()
    if args.minutes < 2:
        parser.error("--minutes must be at least 2 (memory is sampled after minute one)")
    trace = not args.no_tracemalloc
    if trace:
        tracemalloc.start()
    soak = Soak(args.sessions, args.minutes, args.turn_every, trace)
    result = trio.run(soak.main, clock=trio.testing.MockClock(autojump_threshold=0))
    for key, value in result.items():
        print(f"{key}: {value}")
    leaked = (
        result["tasks_before_after"][0] != result["tasks_before_after"][1]
        or result["fds_before_after"][0] != result["fds_before_after"][1]
        or result["server_connections_open_after"]
    )
    growing = trace and (
        result["library_traced_growth_bytes_per_session_minute"] > args.max_library_growth
    )
    if leaked or growing:
        print("FAILED: " + ("tasks or fds left after close" if leaked else "library memory grows"))
    sys.exit(1 if leaked or growing else 0)


if __name__ == "__main__":
    main()
