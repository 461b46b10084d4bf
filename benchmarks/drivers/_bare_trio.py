"""The floor: a trio client that does nothing but decode (and, for W2, the minimum to be right).

Each bare driver passes an ``Open`` callable: ``open(url)`` is an async context manager yielding
``(send, receive)`` for one WebSocket, taken straight from the library, so the loop below calls
the library's own methods with nothing in between. Per audio delta the work is: receive the
frame, ``orjson.loads``, ``binascii.a2b_base64`` of the audio, hand it to the application.
"""

from __future__ import annotations

import binascii
import gc
import math
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import orjson
import trio

from ._common import (
    DELTA_BYTES,
    DELTA_MS,
    BargeIn,
    Burst,
    Concurrency,
    emit,
    now_ns,
    parse_args,
    per_session_memory,
    turn_of,
)

Send = Callable[[str], Awaitable[None]]
Receive = Callable[[], Awaitable[str | bytes]]
Open = Callable[[str], AbstractAsyncContextManager[tuple[Send, Receive]]]

_DELTA = "response.output_audio.delta"
_RESPONSE_CREATE = '{"type":"response.create"}'


async def _created(receive: Receive) -> dict[str, Any]:
    while True:
        event = orjson.loads(await receive())
        if event["type"] == "session.created":
            session: dict[str, Any] = event["session"]
            return session


async def w1(open_ws: Open, url: str, expected: int) -> dict[str, Any]:
    burst = Burst(expected)
    loads, a2b = orjson.loads, binascii.a2b_base64
    async with open_ws(url) as (send, receive):
        await _created(receive)
        await send(_RESPONSE_CREATE)
        while True:
            event = loads(await receive())
            if event["type"] == _DELTA and burst.delivered(a2b(event["delta"])):
                break
    return burst.result()


async def w2(open_ws: Open, url: str, turns: int) -> dict[str, Any]:
    barge = BargeIn(turns)
    loads, a2b = orjson.loads, binascii.a2b_base64
    dropped = 0
    async with open_ws(url) as (send, receive):
        session = await _created(receive)
        detection = session["audio"]["input"]["turn_detection"]
        server_cancels = detection is not None and detection.get("interrupt_response") is not False
        await send(_RESPONSE_CREATE)
        active: str | None = None
        cancelled: set[str] = set()
        item_id = ""
        first_audio = 0
        received_ms = 0.0
        done = 0
        while done < turns:
            event = loads(await receive())
            kind = event["type"]
            if kind == _DELTA:
                if event["response_id"] in cancelled:
                    dropped += 1
                    continue
                audio = a2b(event["delta"])
                if event["item_id"] != item_id:
                    item_id, first_audio, received_ms = event["item_id"], now_ns(), 0.0
                received_ms += len(audio) / 48
                barge.delivered(audio)
            elif kind == "response.created":
                active = event["response"]["id"]
            elif kind == "input_audio_buffer.speech_started" and active is not None:
                barge.interrupted(turn_of(active))
                cancelled.add(active)
                if not server_cancels:
                    await send(
                        orjson.dumps({"type": "response.cancel", "response_id": active}).decode()
                    )
                played = min((now_ns() - first_audio) / 1e6, received_ms)
                truncate = {
                    "type": "conversation.item.truncate",
                    "item_id": item_id,
                    "content_index": 0,
                    "audio_end_ms": math.floor(played),
                }
                await send(orjson.dumps(truncate).decode())
            elif kind == "response.done":
                active = None
                done += 1
    return {**barge.result(), "late_dropped": dropped}


async def w3(
    open_ws: Open, url: str, sessions: int, duration: float, appending: bool = True
) -> dict[str, Any]:
    conc = Concurrency()
    everyone = trio.Event()
    chunk = bytes(DELTA_BYTES)
    loads, a2b = orjson.loads, binascii.a2b_base64

    async def appends(send: Send, index: int) -> None:
        start = trio.current_time() + (index % DELTA_MS) / 1000
        k = 0
        while True:
            await trio.sleep_until(start + k * DELTA_MS / 1000)
            audio = binascii.b2a_base64(chunk, newline=False).decode()
            await send(orjson.dumps({"type": "input_audio_buffer.append", "audio": audio}).decode())
            conc.appends += 1
            k += 1

    async def one(index: int) -> None:
        try:
            await stream(index)
        except Exception as exc:
            conc.failed(exc, sessions, everyone)

    async def stream(index: int) -> None:
        async with open_ws(url) as (send, receive):
            await _created(receive)
            conc.joined(sessions, everyone)
            await everyone.wait()
            await send(_RESPONSE_CREATE)
            async with trio.open_nursery() as nursery:
                if appending:
                    nursery.start_soon(appends, send, index)
                while True:
                    event = loads(await receive())
                    kind = event["type"]
                    if kind == _DELTA:
                        conc.delivered(a2b(event["delta"]))
                    elif kind == "response.done":
                        break
                nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        for index in range(sessions):
            nursery.start_soon(one, index)
    conc.finish()
    return conc.result(sessions)


async def _mem_phase(open_ws: Open, url: str, sessions: int, measure: Callable[[], int]) -> int:
    """Bytes per session: ``measure()`` with ``sessions`` idle sessions open, minus before."""
    gc.collect()
    base = measure()
    opened = 0
    everyone, release = trio.Event(), trio.Event()

    async def drain(receive: Receive) -> None:
        while True:  # an idle session still reads (pings, closes)
            await receive()

    async def one() -> None:
        nonlocal opened
        async with open_ws(url) as (_send, receive):
            await _created(receive)
            opened += 1
            if opened == sessions:
                everyone.set()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(drain, receive)
                await release.wait()
                nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        for _ in range(sessions):
            nursery.start_soon(one)
        await everyone.wait()
        gc.collect()
        used = measure()
        release.set()
    return round((used - base) / sessions)


async def mem(open_ws: Open, url: str, sessions: int) -> dict[str, Any]:
    return await per_session_memory(
        lambda measure: _mem_phase(open_ws, url, sessions, measure), sessions
    )


def main(name: str, open_ws: Open) -> None:
    args = parse_args(f"bare {name} driver")

    async def run() -> dict[str, Any]:
        with trio.fail_after(args.timeout):
            if args.workload == "w1":
                return await w1(open_ws, args.url, args.deltas)
            if args.workload == "w2":
                return await w2(open_ws, args.url, args.turns)
            if args.workload == "w3":
                return await w3(
                    open_ws, args.url, args.sessions, args.duration, not args.no_appends
                )
            if args.workload == "mem":
                return await mem(open_ws, args.url, args.sessions)
            return {"skipped": "a bare client has no tools"}

    emit(name, args.workload, trio.run(run))
