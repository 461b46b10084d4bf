"""Where the time goes between the server's ``speech_started`` and the interruption's effects.

Runs one W4 conversation (a tool call, then ``speech_started`` with the next response's audio
right behind it) or W2 turns against the load server, with the default transport, and prints,
per interruption, the client's steps in microseconds after the server sent
``speech_started``: the socket read that brought it, the decode of each frame, the core's
``receive``, each action the session carried out, the cancelled tool's ``finally`` and the
events the application saw. Run from the repository root:

    PYTHONPATH=. .venv/bin/python benchmarks/trace_interrupt.py            # W4
    PYTHONPATH=. .venv/bin/python benchmarks/trace_interrupt.py --w2 6     # 6 W2 turns

The steps are timed by wrapping private methods of the session, the connection and the
transport, which adds a few microseconds to each; the figures show where the time goes, not
the benchmark's end-to-end latency (``run.py`` measures that, unwrapped). Both processes read
the same monotonic clock (``now_ns``), so the server's send time and the client's steps
compare directly.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import trio

from benchmarks.drivers import kernl as driver
from benchmarks.drivers._common import now_ns
from kernl_trio import session as session_module
from kernl_trio.core import Conversation
from kernl_trio.providers.openai.codec import OpenAICodec
from kernl_trio.transports import _sansio

STEPS: list[tuple[int, str]] = []


def _note(label: str, started: int | None = None) -> None:
    t = now_ns()
    STEPS.append((t, label if started is None else f"{label} ({(t - started) / 1e3:.0f} us)"))


def _wrap_sync(owner: Any, name: str, label: Callable[..., str | None]) -> None:
    original = getattr(owner, name)

    def wrapper(*args: Any) -> Any:
        started = now_ns()
        result = original(*args)
        text = label(*args, result)
        if text is not None:
            _note(text, started)
        return result

    setattr(owner, name, wrapper)


def instrument() -> None:
    read = _sansio._SansIOWebSocket._read

    async def traced_read(self: Any) -> None:
        await read(self)
        _note(f"socket read, {len(self._messages)} frames queued")

    _sansio._SansIOWebSocket._read = traced_read  # type: ignore[method-assign]
    _wrap_sync(OpenAICodec, "decode", lambda self, frame, event: f"decode {type(event).__name__}")
    _wrap_sync(
        Conversation, "receive", lambda self, event, now, actions: f"core {type(event).__name__}"
    )
    execute = session_module.RealtimeSession._execute

    def traced_execute(self: Any, actions: list[Any]) -> bool:
        if not any(type(a).__name__ == "CancelTurn" for a in actions):
            return execute(self, actions)
        interrupted = False
        for action in actions:
            started = now_ns()
            interrupted = execute(self, [action]) or interrupted
            event = getattr(action, "event", None)
            what = type(action).__name__ + (f" {type(event).__name__}" if event else "")
            _note(f"  action {what}", started)
        return interrupted

    session_module.RealtimeSession._execute = traced_execute  # type: ignore[method-assign]


def serve(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.load_server", "--max-seconds", "120", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    port = json.loads(server.stdout.readline())["port"]
    return server, f"ws://127.0.0.1:{port}/v1/realtime"


def report(server: subprocess.Popen[str]) -> dict[str, Any]:
    assert server.stdin is not None and server.stdout is not None
    server.stdin.close()
    result: dict[str, Any] = json.loads(server.stdout.readline() or "{}")
    server.wait()
    return result


def window(t_ss: int, until_ns: int) -> Iterator[str]:
    for t, label in STEPS:
        if t_ss - 1_000 <= t <= t_ss + until_ns:
            yield f"{(t - t_ss) / 1e3:9.0f} us  {label}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--w2", type=int, default=0, help="trace this many W2 turns instead")
    args = parser.parse_args()
    instrument()
    if args.w2:
        server, url = serve(["--workload", "w2", "--mode", "server", "--turns", str(args.w2)])
        model = driver.make_model(url, "sansio")
        trio.run(driver.w2, model, args.w2)
        marks = report(server)["connections"][0]["marks"]
        for turn, t_ss in enumerate(m[0] for m in marks if m[1] == "speech_started"):
            print(f"W2 turn {turn}:")
            print("\n".join(window(t_ss, 1_500_000)))
        return
    server, url = serve(["--workload", "w4"])
    result = trio.run(driver.w4, url, "sansio", 5.0, 1.0)
    marks = report(server)["connections"][0]["marks"]
    t_ss = next(m[0] for m in marks if m[1] == "speech_started")
    STEPS.extend(
        (t, f"tool's finally ran ({k})") for k, t in result["times"].items() if k != "tool_started"
    )
    STEPS.extend((t, f"application got {kind}") for t, kind, _ in result["events"])
    STEPS.sort()
    print("W4, after the server sent speech_started:")
    print("\n".join(window(t_ss, 3_000_000)))


if __name__ == "__main__":
    main()
