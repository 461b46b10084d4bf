"""What every driver shares: arguments, timestamps in the audio, CPU and memory, the result.

Standard library only (the ``openai-agents`` driver may run in its own environment).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import tracemalloc
from array import array
from collections.abc import Awaitable, Callable
from typing import Any

now_ns = time.monotonic_ns
cpu_ns = time.process_time_ns
DELTA_MS = 20
DELTA_BYTES = 960
_PAGE = os.sysconf("SC_PAGE_SIZE")
_TURN = re.compile(r"(\d+)$")


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--url", required=True, help="ws://127.0.0.1:PORT/v1/realtime")
    parser.add_argument("--workload", choices=["w1", "w2", "w3", "w4", "mem"], required=True)
    parser.add_argument("--deltas", type=int, default=20_000, help="W1: deltas to expect")
    parser.add_argument("--turns", type=int, default=30, help="W2: barge-in turns to expect")
    parser.add_argument("--sessions", type=int, default=100, help="W3/mem: sessions")
    parser.add_argument("--duration", type=float, default=10.0, help="W3: seconds of streaming")
    parser.add_argument("--tool-seconds", type=float, default=5.0, help="W4: the tool's sleep")
    parser.add_argument("--observe-seconds", type=float, default=6.0, help="W4: time to watch")
    parser.add_argument("--transport", default="trio-websocket", help="kernl: connector")
    parser.add_argument(
        "--batched", action="store_true", help="kernl: read session.event_batches()"
    )
    parser.add_argument(
        "--no-appends", action="store_true", help="W3: receive only (no microphone appends)"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="hard limit, seconds")
    return parser.parse_args(argv)


def stamp(audio: bytes) -> tuple[int, int]:
    """(send time in monotonic ns, turn) as the load server wrote them into the audio."""
    return int.from_bytes(audio[:8], "little"), audio[8]


def turn_of(response_id: str | None) -> int | None:
    """``resp_0007`` -> 7 (the load server numbers W2's responses by turn)."""
    if not response_id:
        return None
    match = _TURN.search(response_id)
    return int(match.group(1)) if match else None


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


async def per_session_memory(
    phase: Callable[[Callable[[], int]], Awaitable[int]], sessions: int
) -> dict[str, Any]:
    """Bytes per idle session: ``phase(measure)`` opens the sessions and returns the growth
    per session of ``measure``; it runs once on RSS and once under tracemalloc."""
    rss = await phase(rss_bytes)
    tracemalloc.start()
    try:
        traced = await phase(lambda: tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    return {
        "sessions": sessions,
        "rss_per_session_bytes": rss,
        "tracemalloc_per_session_bytes": traced,
    }


def summary_ms(values_ns: array[int] | list[int]) -> dict[str, float | int | None]:
    """Percentiles of nanosecond values, in ms (nearest-rank)."""
    if not values_ns:
        return {"n": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(values_ns)
    n = len(ordered)

    def rank(q: float) -> float:
        return round(ordered[min(n - 1, max(0, int(q * n + 0.999999) - 1))] / 1e6, 4)

    return {
        "n": n,
        "p50_ms": rank(0.50),
        "p90_ms": rank(0.90),
        "p99_ms": rank(0.99),
        "max_ms": round(ordered[-1] / 1e6, 4),
    }


class Burst:
    """W1 bookkeeping: first/last delivery time and process CPU time."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.t_first = 0
        self.cpu_first = 0
        self.t_last = 0
        self.cpu_last = 0
        self.lags: array[int] = array("q")

    def delivered(self, audio: bytes) -> bool:
        """Count one delta delivered to the application; True once all have arrived."""
        t = now_ns()
        self.count += 1
        if self.count == 1:
            self.t_first, self.cpu_first = t, cpu_ns()
        if self.count % 64 == 0:
            self.lags.append(t - stamp(audio)[0])
        if self.count >= self.expected:
            self.t_last, self.cpu_last = t, cpu_ns()
            return True
        return False

    def result(self) -> dict[str, Any]:
        n = self.count - 1
        wall = (self.t_last - self.t_first) / 1e9
        cpu = (self.cpu_last - self.cpu_first) / 1e3
        return {
            "deltas": self.count,
            "deltas_per_s": round(n / wall, 1) if wall > 0 and n > 0 else None,
            "cpu_us_per_delta": round(cpu / n, 3) if n > 0 else None,
            "lag_sampled": summary_ms(self.lags),
        }


class BargeIn:
    """W2 bookkeeping: when the application learns of each interruption, late audio after it."""

    def __init__(self, turns: int) -> None:
        self.turns = turns
        self.interrupts: dict[int, int] = {}
        self.speech: dict[int, int] = {}
        self.audio_after: dict[int, int] = {}
        self.deltas = 0

    def delivered(self, audio: bytes) -> None:
        self.deltas += 1
        turn = audio[8]
        if turn in self.interrupts:
            self.audio_after[turn] = self.audio_after.get(turn, 0) + 1

    def interrupted(self, turn: int | None) -> None:
        t = now_ns()
        if turn is None:  # no response id: the next turn without one
            turn = next(i for i in range(self.turns + 1) if i not in self.interrupts)
        self.interrupts.setdefault(turn, t)

    def speech_started(self, turn: int) -> None:
        """The application saw speech_started for ``turn`` (where the library exposes it)."""
        self.speech.setdefault(turn, now_ns())

    def result(self) -> dict[str, Any]:
        return {
            "deltas": self.deltas,
            "speech_ns": {str(k): v for k, v in sorted(self.speech.items())},
            "interrupt_ns": {str(k): v for k, v in sorted(self.interrupts.items())},
            "audio_after": {str(k): v for k, v in sorted(self.audio_after.items())},
        }


class Concurrency:
    """W3 bookkeeping: lag of every delta, CPU over the streaming window."""

    def __init__(self) -> None:
        self.lags: array[int] = array("q")
        self.t_first = 0
        self.t_last = 0
        self.cpu_first = 0
        self.cpu_last = 0
        self.appends = 0
        self.connected = 0
        self.errors: dict[str, int] = {}

    def joined(self, sessions: int, everyone: Any) -> None:
        """One session is connected; ``everyone`` (a trio or asyncio Event) once all are in."""
        self.connected += 1
        self._check(sessions, everyone)

    def failed(self, exc: BaseException, sessions: int, everyone: Any) -> None:
        """A session failed (to connect, or later): counted by type, the others go on."""
        name = type(exc).__name__
        self.errors[name] = self.errors.get(name, 0) + 1
        self._check(sessions, everyone)

    def _check(self, sessions: int, everyone: Any) -> None:
        if self.connected + sum(self.errors.values()) >= sessions and not everyone.is_set():
            everyone.set()

    def delivered(self, audio: bytes) -> None:
        t = now_ns()
        if not self.t_first:
            self.t_first, self.cpu_first = t, cpu_ns()
        self.t_last = t
        self.lags.append(t - int.from_bytes(audio[:8], "little"))

    def finish(self) -> None:
        self.cpu_last = cpu_ns()
        self.t_last = now_ns()

    def result(self, sessions: int) -> dict[str, Any]:
        wall = (self.t_last - self.t_first) / 1e9
        cpu = (self.cpu_last - self.cpu_first) / 1e9
        return {
            "sessions": sessions,
            "connected": self.connected,
            "errors": self.errors,
            "deltas": len(self.lags),
            "appends_sent": self.appends,
            "window_s": round(wall, 3),
            "cpu_cores": round(cpu / wall, 3) if wall > 0 else None,
            "cpu_us_per_event": round(cpu * 1e6 / (len(self.lags) + self.appends), 3)
            if self.lags
            else None,
            "lag": summary_ms(self.lags),
        }


class SlowTool:
    """W4 bookkeeping: the benchmark's tool sleeps; when it started, finished or was cancelled.

    Each driver wraps :meth:`run` in its library's tool decorator, with its own ``sleep``.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.times: dict[str, int] = {}

    async def run(self, sleep: Callable[[float], Awaitable[object]]) -> str:
        self.times["tool_started"] = now_ns()
        try:
            await sleep(self.seconds)
            self.times["tool_finished"] = now_ns()
            return "finished"
        finally:
            if "tool_finished" not in self.times:
                self.times["tool_cancelled"] = now_ns()


def emit(driver: str, workload: str, result: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps({"driver": driver, "workload": workload, **result}) + "\n")
    sys.stdout.flush()
