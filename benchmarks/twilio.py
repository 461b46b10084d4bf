"""Cost of the Twilio channel per 20 ms frame, and phone calls per core at realtime pace.

Run from the repository root:

    .venv/bin/python benchmarks/twilio.py                 # both parts, about 1.5 min
    .venv/bin/python benchmarks/twilio.py --part frames   # per-frame costs only
    .venv/bin/python benchmarks/twilio.py --part calls --calls 20,50 --seconds 10
    .venv/bin/python benchmarks/twilio.py --part calls --calls 20 --formats pcmu \
        --servers sansio,trio-websocket --workers 1,2

Part 1, per frame (``timeit``, best of ``--repeat``): the channel's own work for one 20 ms
frame, synchronously, without sockets.
  * in: Twilio's media JSON text -> ``ChannelAudio`` on the channel's input (decode, base64,
    transcode when the model does not speak u-law);
  * out: the model's 20 ms chunk -> one media JSON + one mark JSON queued for the socket
    (transcode, base64, encode), plus handling Twilio's echo of that mark.

Part 2, calls at realtime pace: this process runs ``serve_twilio`` (channel, session and the
model connection: the whole bridge); a child process runs the scripted model server and N
simulated Twilio peers on the real clock. Every call is full duplex the whole time: the peer
sends 20 ms of u-law every 20 ms, the model streams audio in realtime, the peer plays it and
echoes each mark. The bridge's CPU (``time.process_time()`` of this process only) over
``--seconds`` of wall time gives CPU per call-second, and 1 / that is calls per core. The
child reports the frames it received so a run that fell behind realtime shows.

``--servers`` picks the bridge's WebSocket server: ``sansio`` (``serve_twilio``, websockets'
sans-I/O protocol) and ``trio-websocket`` (trio-websocket's server handing each socket to
``handle_twilio_call``: the same channel and session). ``--workers 1,2`` also runs the
deployed form, ``python -m kernl_trio twilio --workers N``, and measures the CPU of all its
processes (``/proc``, Linux) the same way: calls per core with N processes sharing the port.
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import os
import platform
import signal
import subprocess
import sys
import time
import timeit
from functools import partial
from typing import Any

import orjson
import trio

from kernl_trio.agent import RealtimeAgent
from kernl_trio.audio import Transcoder, tone
from kernl_trio.channels.twilio import (
    TwilioChannel,
    TwilioOptions,
    TwilioServer,
    handle_twilio_call,
    serve_twilio,
)
from kernl_trio.protocol import PCM16_24K, PCMU_8K, AudioFormat
from kernl_trio.providers.openai import OpenAIRealtimeModel

FRAME_MS = 20
AGENT = RealtimeAgent("bench", name="Bench", instructions="Talk.")
"""The agent every benchmark call talks to (``--agent benchmarks.twilio:AGENT`` for workers)."""
SERVERS = ("sansio", "trio-websocket")
FORMATS: dict[str, AudioFormat] = {"pcmu": PCMU_8K, "pcm16": PCM16_24K}
SID = "MZ" + "0" * 32


# -- part 1: per frame ----------------------------------------------------------------------
class _NullSocket:
    async def send(self, message: str) -> None:
        raise AssertionError("not used")

    async def receive(self) -> str | bytes:
        raise AssertionError("not used")

    async def aclose(self, code: int = 1000, reason: str | None = None) -> None:
        pass


def _started_channel(model_format: AudioFormat) -> TwilioChannel:
    channel = TwilioChannel(_NullSocket(), TwilioOptions(model_format=model_format))
    start = {
        "event": "start",
        "streamSid": SID,
        "start": {"streamSid": SID, "callSid": "CA" + "0" * 32, "customParameters": {}},
    }
    channel.receive_frame(orjson.dumps(start).decode())
    return channel


def _speech_ulaw(frames: int) -> list[bytes]:
    ulaw = Transcoder(PCM16_24K, PCMU_8K).convert(tone(PCM16_24K, 440, frames * FRAME_MS, 0.3))
    return [ulaw[i * 160 : (i + 1) * 160] for i in range(frames)]


def _best_us(step: Any, number: int, repeat: int) -> float:
    return min(timeit.repeat(step, number=number, repeat=repeat)) / number * 1e6


async def frame_costs(number: int, repeat: int) -> dict[str, float]:
    frames = _speech_ulaw(50)
    media = [
        orjson.dumps(
            {
                "event": "media",
                "sequenceNumber": str(i + 2),
                "streamSid": SID,
                "media": {
                    "track": "inbound",
                    "chunk": str(i + 1),
                    "timestamp": str(i * FRAME_MS),
                    "payload": base64.b64encode(frame).decode(),
                },
            }
        ).decode()
        for i, frame in enumerate(frames)
    ]
    pcm_chunks = [tone(PCM16_24K, 440 + i, FRAME_MS, 0.3) for i in range(50)]
    results: dict[str, float] = {}
    for name, fmt in FORMATS.items():
        channel = _started_channel(fmt)
        receive = channel.input.receive_nowait
        counter = iter(range(10**9))

        def inbound(channel: TwilioChannel = channel, receive: Any = receive) -> None:
            i = next(counter) % 50  # noqa: B023 (bound per format)
            channel.receive_frame(media[i])
            with contextlib.suppress(trio.WouldBlock):  # the resampler's first frames
                receive()

        results[f"in {name}"] = _best_us(inbound, number, repeat)

        outbox = channel._outbox
        chunks = frames if fmt == PCMU_8K else pcm_chunks
        sent = iter(range(10**9))

        def outbound(channel: TwilioChannel = channel, chunks: list[bytes] = chunks) -> None:
            i = next(sent)  # noqa: B023
            channel.queue_audio(chunks[i % 50], "item_bench")
            while outbox:  # noqa: B023
                out = outbox.popleft()  # noqa: B023
                if out.mark is not None:
                    echo = '{"event":"mark","streamSid":"%s","mark":{"name":"%s"}}'
                    channel.receive_frame(echo % (SID, out.mark))

        results[f"out {name}"] = _best_us(outbound, number, repeat)
    return results


# -- part 2: calls at realtime pace --------------------------------------------------------------
async def _read_line(stream: trio.abc.ReceiveStream, buffer: bytearray) -> str:
    while b"\n" not in buffer:
        data = await stream.receive_some()
        if not data:
            raise RuntimeError("the load process ended early")
        buffer += data
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line.decode()


class _Bridge:
    """The bridge under test in this process, on one of the two WebSocket servers.

    ``sansio`` is ``serve_twilio`` itself (websockets' sans-I/O protocol); ``trio-websocket``
    runs trio-websocket's server and hands each accepted socket to ``handle_twilio_call``,
    the same channel and session per call.
    """

    def __init__(self, server: str, model: OpenAIRealtimeModel, options: TwilioOptions) -> None:
        self.server, self.model, self.options = server, model, options
        self.port = 0
        self.failed = 0
        self._twilio: TwilioServer | None = None
        self._channels: set[TwilioChannel] = set()

    def channels(self) -> list[TwilioChannel]:
        if self._twilio is not None:
            return [call.channel for call in self._twilio.calls.values()]
        return list(self._channels)

    def active(self) -> int:
        if self._twilio is not None:
            return self._twilio.statistics().active
        return len(self._channels)

    def failures(self) -> int:
        return self._twilio.statistics().failed if self._twilio is not None else self.failed

    async def run(self, *, task_status: trio.TaskStatus[None]) -> None:
        if self.server == "sansio":
            async with trio.open_nursery() as nursery:
                self._twilio = await nursery.start(
                    partial(serve_twilio, AGENT, model=self.model, options=self.options)
                )
                self.port = self._twilio.port
                task_status.started()
            return
        import trio_websocket

        async def handler(request: trio_websocket.WebSocketRequest) -> None:
            ws = await request.accept()
            channel = TwilioChannel(ws, self.options)
            self._channels.add(channel)
            try:
                await handle_twilio_call(channel, AGENT, model=self.model, options=self.options)
            except Exception:
                self.failed += 1
            finally:
                self._channels.discard(channel)

        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                trio_websocket.serve_websocket, handler, "127.0.0.1", 0, None
            )
            self.port = server.port
            task_status.started()


async def _start_load(calls: int, fmt: str, chunk_ms: int) -> tuple[trio.Process, bytearray, int]:
    args = [sys.executable, __file__, "--role", "load", "--calls", str(calls), "--format", fmt]
    args += ["--model-chunk-ms", str(chunk_ms)]
    process = await trio.lowlevel.open_process(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdin is not None and process.stdout is not None
    buffer = bytearray()
    model_port = int((await _read_line(process.stdout, buffer)).split()[1])
    return process, buffer, model_port


async def bridge_run(
    calls: int,
    seconds: float,
    fmt: str,
    chunk_ms: int,
    frame_ms: int = 20,
    server: str = "sansio",
) -> dict[str, Any]:
    process, buffer, model_port = await _start_load(calls, fmt, chunk_ms)
    assert process.stdin is not None and process.stdout is not None
    async with trio.open_nursery() as nursery:
        model = OpenAIRealtimeModel(base_url=f"ws://127.0.0.1:{model_port}/v1/realtime")
        options = TwilioOptions(model_format=FORMATS[fmt], frame_ms=frame_ms)
        bridge = _Bridge(server, model, options)
        await nursery.start(bridge.run)
        await process.stdin.send_all(f"BRIDGE {bridge.port}\n".encode())
        assert await _read_line(process.stdout, buffer) == "READY"
        await trio.sleep(1.0)  # warm up: every call streaming both ways
        media_before = sum(c.statistics().media_out for c in bridge.channels())
        in_before = sum(c.statistics().media_in for c in bridge.channels())
        times0, cpu0, wall0 = os.times(), time.process_time(), time.perf_counter()
        await trio.sleep(seconds)
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - wall0
        times = os.times()
        user, system = times.user - times0.user, times.system - times0.system
        media_after = sum(c.statistics().media_out for c in bridge.channels())
        in_after = sum(c.statistics().media_in for c in bridge.channels())
        await process.stdin.send_all(b"DONE\n")
        load_report = orjson.loads(await _read_line(process.stdout, buffer))
        while bridge.active():  # noqa: ASYNC110 (the calls end as peers hang up)
            await trio.sleep(0.05)
        await process.stdin.send_all(b"EXIT\n")
        await process.wait()
        failed = bridge.failures()
        nursery.cancel_scope.cancel()
    cpu_per_call_second = cpu / (calls * wall)
    out_rate = (media_after - media_before) / (calls * wall)
    in_rate = (in_after - in_before) / (calls * wall)
    return {
        "server": server,
        # a run that fell behind real time measured less work than it claims: discard it
        "pace_held": min(out_rate, in_rate) >= 0.95 * 1000 / FRAME_MS,
        "format": fmt,
        "calls": calls,
        "wall_s": round(wall, 2),
        "bridge_cpu_s": round(cpu, 3),
        "core_busy": round(cpu / wall, 3),
        "kernel_share": round(system / (user + system), 2) if user + system else None,
        "cpu_ms_per_call_second": round(cpu_per_call_second * 1000, 3),
        "calls_per_core": int(1 / cpu_per_call_second),
        "out_frames_per_call_s": round((media_after - media_before) / (calls * wall), 1),
        "in_frames_per_call_s": round((in_after - in_before) / (calls * wall), 1),
        "peer_frames_received_per_call": load_report["frames_per_call"],
        "peer_marks_echoed_per_call": load_report["marks_per_call"],
        "load_process_cpu_s": load_report["load_cpu_s"],
        "model_chunk_ms": chunk_ms,
        "frame_ms": frame_ms,
        "failed_calls": failed,
    }


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of ``pids`` so far (Linux ``/proc``)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def _children(pid: int) -> list[int]:
    """The child processes of ``pid``, whichever of its threads started them."""
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as children:
            found += [int(child) for child in children.read().split()]
    return found


async def workers_run(
    calls: int, seconds: float, fmt: str, chunk_ms: int, workers: int
) -> dict[str, Any]:
    """``kernl-trio twilio --workers N`` as deployed: CPU of its processes per call-second."""
    process, buffer, model_port = await _start_load(calls, fmt, chunk_ms)
    assert process.stdin is not None and process.stdout is not None
    argv = [sys.executable, "-m", "kernl_trio", "twilio", "--agent", "benchmarks.twilio:AGENT"]
    argv += ["--port", "0", "--model-url", f"ws://127.0.0.1:{model_port}/v1/realtime"]
    argv += ["--model-format", fmt, "--workers", str(workers), "--log-level", "WARNING"]
    bridge = await trio.lowlevel.open_process(argv, stdout=subprocess.PIPE)
    assert bridge.stdout is not None
    out = bytearray()
    ready = f"{workers} workers answering" if workers > 1 else "answering on"
    while True:
        line = await _read_line(bridge.stdout, out)
        if ready in line:
            port = int(line.split("ws://127.0.0.1:", 1)[1].split()[0])
            break
    pids = [bridge.pid, *_children(bridge.pid)] if workers > 1 else [bridge.pid]
    await process.stdin.send_all(f"BRIDGE {port}\n".encode())
    assert await _read_line(process.stdout, buffer) == "READY"
    await trio.sleep(1.0)
    cpu0, wall0 = _cpu_seconds(pids), time.perf_counter()
    await trio.sleep(seconds)
    cpu, wall = _cpu_seconds(pids) - cpu0, time.perf_counter() - wall0
    await process.stdin.send_all(b"DONE\n")
    load_report = orjson.loads(await _read_line(process.stdout, buffer))
    bridge.send_signal(signal.SIGTERM)  # drain: the calls end as the peers hang up
    await process.stdin.send_all(b"EXIT\n")
    await process.wait()
    with trio.fail_after(30):
        status = await bridge.wait()
    cpu_per_call_second = cpu / (calls * wall)
    expected = int((seconds + 1) * 1000 / FRAME_MS)
    return {
        "workers": workers,
        "pace_held": load_report["frames_per_call"] >= 0.95 * expected,
        "format": fmt,
        "calls": calls,
        "wall_s": round(wall, 2),
        "bridge_cpu_s": round(cpu, 3),
        "cores_busy": round(cpu / wall, 3),
        "cpu_ms_per_call_second": round(cpu_per_call_second * 1000, 3),
        "calls_per_core": int(1 / cpu_per_call_second),
        "peer_frames_received_per_call": load_report["frames_per_call"],
        "expected_frames_per_call": expected,
        "load_process_cpu_s": load_report["load_cpu_s"],
        "bridge_exit_status": status,
    }


# -- part 3: the WebSocket servers alone ---------------------------------------------------------
async def server_cost(server: str, clients: int, messages: int) -> dict[str, Any]:
    """CPU of this process per message for one WebSocket server, in a closed loop.

    A child process opens ``clients`` connections and sends ``messages`` Twilio media frames on
    each as fast as the server takes them; the server answers each with a mark-sized text
    frame (a Twilio bridge's traffic, without the channel and the session). No pacing, so
    scheduling noise does not hide in a missed pace: what is measured is CPU per message.
    """
    import trio_websocket

    from kernl_trio._wsserver import ServerWebSocket, WebSocketServer

    reply = _MARK % (1, SID, "item_1:20")

    async def sansio_handler(ws: ServerWebSocket) -> None:
        with contextlib.suppress(Exception):
            while True:
                for _ in await ws.receive_batch():  # as the bridge's channel reads
                    await ws.send(reply)

    async def trio_websocket_handler(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        with contextlib.suppress(trio_websocket.ConnectionClosed):
            while True:
                await ws.get_message()
                await ws.send_message(reply)

    async with trio.open_nursery() as nursery:
        if server == "sansio":
            listening = WebSocketServer(sansio_handler)
            await nursery.start(partial(listening.serve, "127.0.0.1", 0))
            port = listening.port
        else:
            listening_tw = await nursery.start(
                trio_websocket.serve_websocket, trio_websocket_handler, "127.0.0.1", 0, None
            )
            port = listening_tw.port
        args = [sys.executable, __file__, "--role", "flood", "--calls", str(clients)]
        args += ["--number", str(messages), "--bridge-port", str(port)]
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await trio.run_process(args)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        nursery.cancel_scope.cancel()
    total = clients * messages
    return {
        "server": server,
        "connections": clients,
        "messages_each_way": total,
        "wall_s": round(wall, 2),
        "server_cpu_s": round(cpu, 3),
        "server_us_per_message_pair": round(cpu / total * 1e6, 2),
    }


async def flood(clients: int, messages: int, port: int) -> None:
    """The child of :func:`server_cost`: send, and read the answers, as fast as possible."""
    import trio_websocket

    frame = _MEDIA % (1, SID, 1, 0)

    async def client() -> None:
        async with trio_websocket.open_websocket_url(f"ws://127.0.0.1:{port}/twilio") as ws:

            async def send() -> None:
                for _ in range(messages):
                    await ws.send_message(frame)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(send)
                for _ in range(messages):
                    await ws.get_message()

    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(client)


_CONNECTED = '{"event":"connected","protocol":"Call","version":"1.0.0"}'
_START = (
    '{"event":"start","sequenceNumber":"1","streamSid":"%s","start":{"streamSid":"%s",'
    '"callSid":"%s","accountSid":"AC%s","tracks":["inbound"],"customParameters":{},'
    '"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}'
)
_MEDIA = (
    '{"event":"media","sequenceNumber":"%d","streamSid":"%s","media":{"track":"inbound",'
    '"chunk":"%d","timestamp":"%d","payload":"' + base64.b64encode(b"\xff" * 160).decode() + '"}}'
)
_MARK = '{"event":"mark","sequenceNumber":"%d","streamSid":"%s","mark":{"name":"%s"}}'
_STOP = '{"event":"stop","sequenceNumber":"%d","streamSid":"%s","stop":{"callSid":"%s"}}'


class LeanCaller:
    """A cheap Twilio for load generation (``kernl_trio.testing.twilio_peer`` simulates more
    and costs more): pre-formatted inbound frames sent by one shared ticker, and each mark
    echoed when the audio before it would have finished playing, tracked by arithmetic on
    payload lengths instead of decoding and "playing" audio."""

    def __init__(self, n: int) -> None:
        self.sid, self.call_sid = f"MZ{n:032x}", f"CA{n:032x}"
        self.ws: Any = None
        self.sequence = 1
        self.chunk = 0
        self.busy_until = 0.0
        self.echoes: collections.deque[tuple[float, str]] = collections.deque()
        self.frames = self.marks = 0

    async def run(self, url: str, *, task_status: trio.TaskStatus[None]) -> None:
        import trio_websocket

        async with trio_websocket.open_websocket_url(url) as ws:
            self.ws = ws
            await ws.send_message(_CONNECTED)
            await ws.send_message(_START % (self.sid, self.sid, self.call_sid, "0" * 32))
            task_status.started()
            try:
                while True:
                    message = orjson.loads(await ws.get_message())
                    event = message["event"]
                    if event == "media":
                        text = message["media"]["payload"]
                        nbytes = len(text) * 3 // 4 - text[-2:].count("=")
                        start = max(trio.current_time(), self.busy_until)
                        self.busy_until = start + nbytes / 8000
                        self.frames += 1
                    elif event == "mark":
                        self.echoes.append((self.busy_until, message["mark"]["name"]))
            except trio_websocket.ConnectionClosed:
                pass

    async def tick(self, now: float) -> None:
        self.chunk += 1
        self.sequence += 1
        timestamp = (self.chunk - 1) * FRAME_MS
        await self.ws.send_message(_MEDIA % (self.sequence, self.sid, self.chunk, timestamp))
        while self.echoes and self.echoes[0][0] <= now:
            name = self.echoes.popleft()[1]
            self.sequence += 1
            await self.ws.send_message(_MARK % (self.sequence, self.sid, name))
            self.marks += 1

    async def hang_up(self) -> None:
        self.sequence += 1
        await self.ws.send_message(_STOP % (self.sequence, self.sid, self.call_sid))
        await self.ws.aclose()


async def load_run(calls: int, fmt: str, chunk_ms: int) -> None:
    """The child: the scripted model server and the simulated callers, on the real clock."""
    from kernl_trio.testing import ScriptedServer

    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    buffer = bytearray()

    def say(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    async def ticker(callers: list[LeanCaller]) -> None:
        """20 ms of caller audio for every call, every 20 ms, without drift."""
        deadline = trio.current_time()
        while True:
            deadline += FRAME_MS / 1000
            await trio.sleep_until(deadline)
            now = trio.current_time()
            for caller in callers:
                await caller.tick(now)

    async def model_ticker(deltas: list[tuple[Any, str]], chunk_ms: int) -> None:
        deadline = trio.current_time()
        while True:
            for conn, text in deltas:
                await conn.send_frame(text)
            deadline += chunk_ms / 1000
            await trio.sleep_until(deadline)

    async with trio.open_nursery() as nursery:
        server: ScriptedServer = await nursery.start(ScriptedServer().run)
        say(f"MODEL {server.port}")
        bridge_port = int((await _read_line(stdin, buffer)).split()[1])
        callers = [LeanCaller(n) for n in range(1, calls + 1)]
        for caller in callers:
            await nursery.start(caller.run, f"ws://127.0.0.1:{bridge_port}/twilio")
        async with trio.open_nursery() as ticking:
            ticking.start_soon(ticker, callers)
            # The model: one endless response per call, its audio deltas paced without drift
            # by one shared ticker (the scripted server's own pacing sleeps per delta).
            model_format = FORMATS[fmt]
            audio = tone(model_format, 440, chunk_ms, 0.3)
            payload = base64.b64encode(audio).decode()
            deltas = []
            for index in range(calls):
                conn = await server.connection(index)
                await conn.expect("session.update")
                response = {"object": "realtime.response", "id": f"resp_{index}", "output": []}
                conn.send_nowait({"type": "response.created", "response": response})
                delta = {
                    "type": "response.output_audio.delta",
                    "response_id": f"resp_{index}",
                    "item_id": f"item_{index}",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": payload,
                }
                deltas.append((conn, orjson.dumps(delta).decode()))
            ticking.start_soon(model_ticker, deltas, chunk_ms)
            say("READY")
            assert await _read_line(stdin, buffer) == "DONE"
            frames = sum(c.frames for c in callers) // calls
            marks = sum(c.marks for c in callers) // calls
            report = {
                "frames_per_call": frames,
                "marks_per_call": marks,
                "load_cpu_s": round(time.process_time(), 2),
            }
            say(orjson.dumps(report).decode())
            ticking.cancel_scope.cancel()
        async with trio.open_nursery() as hang_ups:
            for caller in callers:
                hang_ups.start_soon(caller.hang_up)
        assert await _read_line(stdin, buffer) == "EXIT"  # the bridge has closed every call
        nursery.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["frames", "calls", "servers", "all"], default="all")
    parser.add_argument("--number", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--calls", default="20,50")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--formats", default="pcmu,pcm16")
    parser.add_argument("--role", choices=["bridge", "load", "flood"], default="bridge")
    parser.add_argument("--bridge-port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--frame-ms",
        type=int,
        default=20,
        help="TwilioOptions.frame_ms: outbound media frame and mark interval",
    )
    parser.add_argument("--format", default="pcmu")
    parser.add_argument(
        "--servers",
        default="sansio",
        help=f"WebSocket servers for the calls part, comma-separated: {', '.join(SERVERS)}",
    )
    parser.add_argument(
        "--workers",
        default="",
        help="also run `kernl-trio twilio --workers N` for each N (comma-separated), "
        "measuring the CPU of all its processes",
    )
    parser.add_argument(
        "--model-chunk-ms",
        type=int,
        default=100,
        help="audio per model delta (response.output_audio.delta), sent in realtime",
    )
    args = parser.parse_args()
    if args.role == "load":
        trio.run(load_run, int(args.calls), args.format, args.model_chunk_ms)
        return
    if args.role == "flood":
        trio.run(flood, int(args.calls), args.number, args.bridge_port)
        return
    print(f"{platform.machine()}, {os.cpu_count()} logical CPUs, {platform.platform()}")
    print(f"CPython {platform.python_version()}, trio {trio.__version__}\n")
    if args.part in ("frames", "all"):
        costs = trio.run(frame_costs, args.number, args.repeat)
        print(f"per 20 ms frame, best of {args.repeat} x {args.number}:")
        for name, us in costs.items():
            print(f"  {name:10s} {us:7.2f} us")
        for fmt in FORMATS:
            both = costs[f"in {fmt}"] + costs[f"out {fmt}"]
            print(f"  call {fmt}: {both:.2f} us per 20 ms -> {20_000 / both:,.0f} calls/core")
        print()
    if args.part in ("servers", "all"):
        for server in SERVERS:
            for _ in range(args.repeat):
                result = trio.run(server_cost, server, 10, args.number // 4)
                print(orjson.dumps(result).decode(), flush=True)
    if args.part in ("calls", "all"):
        for fmt in args.formats.split(","):
            for calls in (int(c) for c in args.calls.split(",")):
                for server in args.servers.split(","):
                    result = trio.run(
                        bridge_run,
                        calls,
                        args.seconds,
                        fmt,
                        args.model_chunk_ms,
                        args.frame_ms,
                        server,
                    )
                    print(orjson.dumps(result).decode(), flush=True)
                for workers in (int(w) for w in args.workers.split(",") if w):
                    result = trio.run(
                        workers_run, calls, args.seconds, fmt, args.model_chunk_ms, workers
                    )
                    print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
