"""The phone bridge as a service: drain on SIGTERM/Ctrl-C, /healthz, per-call logs.

The signal tests run ``python -m kernl_trio twilio`` as a subprocess and send it a real signal;
the model server and the simulated Twilio caller run in the test's own trio run (real time).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import orjson
import pytest
import trio
import trio.testing

from kernl_trio.channels.twilio import TwilioServer, serve_twilio
from kernl_trio.cli._common import JsonFormatter
from kernl_trio.cli.twilio import worker_line, workers_status
from kernl_trio.providers.openai import OpenAIRealtimeModel
from kernl_trio.testing import AudioReply, Reply, ScriptedServer
from kernl_trio.testing.twilio_peer import TwilioPeer

from .phone_agent import AGENT
from .test_twilio_server import (
    RESPONSE_CREATE,
    dial,
    model_side,
    start_model_server,
    wait_until,
)

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
ENV.pop("OPENAI_API_KEY", None)


class Bridge:
    """``kernl-trio twilio`` in a subprocess: its port, and its output so far."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.out = ""
        self.err = ""
        self.port = 0

    async def read(self, stream: trio.abc.ReceiveStream, name: str) -> None:
        async for chunk in stream:
            setattr(self, name, getattr(self, name) + chunk.decode())

    async def wait_for(self, pattern: str) -> re.Match[str]:
        with trio.fail_after(20):
            while True:
                found = re.search(pattern, self.out + self.err)
                if found:
                    return found
                await trio.sleep(0.02)


@asynccontextmanager
async def running(argv: list[str]) -> AsyncIterator[Bridge]:
    """``argv`` as a subprocess whose output the yielded :class:`Bridge` collects; waited
    for after the block (its output is then whole), killed if it is still running."""
    process = await trio.lowlevel.open_process(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV
    )
    bridge = Bridge(process)
    try:
        async with trio.open_nursery() as nursery:
            assert process.stdout is not None and process.stderr is not None
            nursery.start_soon(bridge.read, process.stdout, "out")
            nursery.start_soon(bridge.read, process.stderr, "err")
            yield bridge
            with trio.fail_after(20):
                await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


@asynccontextmanager
async def bridge_process(model_url: str, *args: str) -> AsyncIterator[Bridge]:
    argv = [sys.executable, "-m", "kernl_trio", "twilio", "--agent", "tests.phone_agent:AGENT"]
    argv += ["--port", "0", "--model-url", model_url, *args]
    async with running(argv) as bridge:
        found = await bridge.wait_for(r"answering on ws://127\.0\.0\.1:(\d+)")
        bridge.port = int(found.group(1))
        yield bridge


async def http_get(port: int, path: str) -> tuple[int, str]:
    """The status and body of ``GET path``; ``(0, "")`` if the connection is refused."""
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    except OSError:
        return 0, ""
    async with stream:
        await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        with trio.fail_after(5):
            async for chunk in stream:
                data += chunk
    head, _, body = data.decode().partition("\r\n\r\n")
    return int(head.split(" ")[1]), body


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_drains_calls_in_progress_then_exits_0(signum: signal.Signals) -> None:
    async with trio.open_nursery() as nursery:
        model_server = await start_model_server(nursery)
        async with bridge_process(model_server.url, "--grace", "20") as bridge:
            peer: TwilioPeer = await nursery.start(
                TwilioPeer(f"ws://127.0.0.1:{bridge.port}/twilio").run
            )
            conn = await model_side(model_server)
            await bridge.wait_for("call started")
            assert await http_get(bridge.port, "/healthz") == (200, "ok\n")
            bridge.process.send_signal(signum)
            await bridge.wait_for("draining")
            # not listening any more (a health check fails); the call in progress goes on
            assert (await http_get(bridge.port, "/healthz"))[0] in (503, 0)
            with pytest.raises(OSError):
                await trio.open_tcp_stream("127.0.0.1", bridge.port)
            conn.start_response(RESPONSE_CREATE, Reply.of(AudioReply("still here", ms=200)))
            await peer.wait_received("mark", count=3)
            assert bridge.process.returncode is None
            await peer.hang_up()
        nursery.cancel_scope.cancel()
    assert bridge.process.returncode == 0, bridge.err
    assert "Traceback" not in bridge.err and "ExceptionGroup" not in bridge.err
    assert re.search(r"call ended: call_sid=CA\w+ stream_sid=MZ\w+ duration=[\d.]+s", bridge.err)
    assert "outcome=completed reason=stop" in bridge.err, bridge.err


async def test_the_grace_period_ends_the_calls_left_cleanly() -> None:
    async with trio.open_nursery() as nursery:
        model_server = await start_model_server(nursery)
        async with bridge_process(model_server.url, "--grace", "0.1", "--log-json") as bridge:
            peer: TwilioPeer = await nursery.start(
                TwilioPeer(f"ws://127.0.0.1:{bridge.port}/twilio").run
            )
            await model_side(model_server)
            await bridge.wait_for("call started")
            bridge.process.send_signal(signal.SIGTERM)
            with trio.fail_after(10):
                await peer.closed.wait()  # the bridge hung up on the caller
            conn = model_server.connections[0]
            with trio.fail_after(10):
                await conn.closed.wait()  # the session closed its model connection
        nursery.cancel_scope.cancel()
    assert bridge.process.returncode == 0, bridge.err
    assert "outcome=completed reason=hung up by the bridge" in bridge.err
    assert "Traceback" not in bridge.err
    # --log-json: every log line is one JSON object; the call's lines carry its fields
    lines = [orjson.loads(line) for line in bridge.err.splitlines()]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    (ended,) = [line for line in lines if line.get("event") == "call.ended"]
    assert ended["call_sid"].startswith("CA") and ended["stream_sid"].startswith("MZ")
    assert (ended["outcome"], ended["reason"]) == ("completed", "hung up by the bridge")
    assert ended["duration_s"] > 0


# -- in-process: health check, logs ----------------------------------------------------------------
async def start_bridge(nursery: trio.Nursery, model_server: ScriptedServer) -> TwilioServer:
    model = OpenAIRealtimeModel(base_url=model_server.url)
    server: TwilioServer = await nursery.start(partial(serve_twilio, AGENT, model=model))
    return server


async def test_healthz_and_other_plain_gets(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    model_server = await start_model_server(nursery)
    bridge = await start_bridge(nursery, model_server)
    assert await http_get(bridge.port, "/healthz") == (200, "ok\n")
    assert await http_get(bridge.port, "/healthz?probe=1") == (200, "ok\n")
    assert (await http_get(bridge.port, "/"))[0] == 400
    assert (await http_get(bridge.port, "/twilio"))[0] == 400
    nursery.start_soon(bridge.drain, 5.0)
    await trio.sleep(0.1)
    assert bridge.statistics().draining


async def test_drain_waits_for_calls_then_returns(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    model_server = await start_model_server(nursery)
    model = OpenAIRealtimeModel(base_url=model_server.url)
    stopped = trio.Event()

    async def run_bridge(task_status: trio.TaskStatus[TwilioServer]) -> None:
        await serve_twilio(AGENT, model=model, task_status=task_status)
        stopped.set()

    bridge: TwilioServer = await nursery.start(run_bridge)
    peer = await dial(nursery, bridge)
    await model_side(model_server)
    began = trio.current_time()
    nursery.start_soon(bridge.drain, 30.0)
    await trio.sleep(3)
    assert not stopped.is_set() and bridge.statistics().active == 1
    await peer.hang_up()
    with trio.fail_after(5):
        await stopped.wait()
    assert trio.current_time() - began < 5
    assert bridge.history[-1].outcome == "completed" and bridge.history[-1].reason == "stop"


async def test_a_stream_without_start_is_one_warning(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    model_server = await start_model_server(nursery)
    bridge = await start_bridge(nursery, model_server)
    caplog.set_level(logging.INFO, "kernl_trio")
    peer = await dial(nursery, bridge, send_start=False)
    for _ in range(300):  # media before start: ignored, not "not keeping up"
        peer.send_nowait({"event": "media", "media": {"payload": "/////w==", "track": "inbound"}})
    await peer.disconnect()
    await trio.sleep(1)
    records = [r for r in caplog.records if r.name.startswith("kernl_trio.channels")]
    assert [r.levelname for r in records] == ["WARNING"], [r.getMessage() for r in records]
    assert "not a call" in records[0].getMessage() and records[0].exc_info is None
    assert bridge.history[-1].statistics.media_before_start == 300
    assert bridge.statistics().failed == 0 and bridge.statistics().refused == 1


async def test_an_oversized_frame_is_logged_and_not_completed(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    model_server = await start_model_server(nursery)
    bridge = await start_bridge(nursery, model_server)
    caplog.set_level(logging.INFO, "kernl_trio")
    peer = await dial(nursery, bridge)
    await model_side(model_server)
    peer.send_nowait("x" * (2**16 + 1))
    with trio.fail_after(10):
        await peer.closed.wait()
    await wait_until(lambda: bool(bridge.history))
    record = bridge.history[-1]
    assert record.outcome == "failed" and "1009" in record.reason
    ended = [r for r in caplog.records if r.getMessage().startswith("call ended")]
    assert len(ended) == 1 and ended[0].levelname == "ERROR"
    assert "1009" in ended[0].getMessage() and "exceeds limit" in ended[0].getMessage()
    assert ended[0].exc_info is None


def test_json_log_lines_carry_the_call_fields() -> None:
    record = logging.makeLogRecord(
        {
            "name": "kernl_trio.channels.twilio",
            "levelname": "INFO",
            "msg": "call ended: %s",
            "args": ("CA1",),
            "call_sid": "CA1",
            "outcome": "completed",
            "duration_s": 1.5,
        }
    )
    line = orjson.loads(JsonFormatter().format(record))
    assert line["message"] == "call ended: CA1" and line["level"] == "INFO"
    assert (line["call_sid"], line["outcome"], line["duration_s"]) == ("CA1", "completed", 1.5)
    assert line["time"].endswith("+00:00")


async def test_workers_share_the_port_and_drain_together() -> None:
    async with trio.open_nursery() as nursery:
        model_server = await start_model_server(nursery)
        async with bridge_process(model_server.url, "--workers", "2") as bridge:
            await bridge.wait_for(r"2 workers answering on ws://127\.0\.0\.1:\d+ \(SO_REUSEPORT\)")
            peers = []
            for _ in range(16):
                peer: TwilioPeer = await nursery.start(
                    TwilioPeer(f"ws://127.0.0.1:{bridge.port}/twilio").run
                )
                peers.append(peer)
            for index in range(16):
                await model_side(model_server, index)
            await bridge.wait_for(r"(?s)(call started.*){16}")
            # the kernel spread the calls over both processes
            assert re.search(r"\[worker 0\].*call started", bridge.err)
            assert re.search(r"\[worker 1\].*call started", bridge.err)
            bridge.process.send_signal(signal.SIGTERM)
            await bridge.wait_for(r"(?s)(draining: no new calls.*){2}")
            for peer in peers:
                await peer.hang_up()
        nursery.cancel_scope.cancel()
    assert bridge.process.returncode == 0, bridge.err
    assert bridge.err.count("outcome=completed reason=stop") == 16
    assert "Traceback" not in bridge.err


def test_worker_output_stays_parseable() -> None:
    assert (
        worker_line("kernl-trio twilio: answering", 1) == "[worker 1] kernl-trio twilio: answering"
    )
    relayed = orjson.loads(worker_line('{"level": "INFO", "message": "call ended"}', 0))
    assert relayed == {"level": "INFO", "message": "call ended", "worker": 0}
    assert worker_line("{not json", 2) == "[worker 2] {not json"


async def test_a_caller_that_vanishes_without_closing_ends_after_the_idle_timeout(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    from websockets.client import ClientProtocol
    from websockets.protocol import State
    from websockets.uri import parse_uri

    model_server = await start_model_server(nursery)
    bridge = await start_bridge(nursery, model_server)
    sid = "MZ" + "1" * 32
    start = {
        "event": "start",
        "streamSid": sid,
        "start": {"streamSid": sid, "callSid": "CA" + "1" * 32, "customParameters": {}},
    }
    # a caller on its own sans-I/O protocol: upgrade, start, then nothing at all
    protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{bridge.port}/twilio"))
    protocol.send_request(protocol.connect())
    async with await trio.open_tcp_stream("127.0.0.1", bridge.port) as stream:
        await stream.send_all(b"".join(protocol.data_to_send()))
        while protocol.state is State.CONNECTING:
            protocol.receive_data(await stream.receive_some())
        protocol.send_text(orjson.dumps(start))
        await stream.send_all(b"".join(protocol.data_to_send()))
        began = trio.current_time()
        await model_side(model_server)
        await wait_until(lambda: bool(bridge.history))
        assert trio.current_time() - began == pytest.approx(30, abs=1)
    record = bridge.history[-1]
    assert "nothing received for 30 s" in record.reason
    assert model_server.connections[0].closed.is_set()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_while_starting_stops_it_in_one_line(signum: signal.Signals) -> None:
    # the agent's module sleeps on import: the signal comes before any server listens for it
    argv = [sys.executable, "-m", "kernl_trio", "twilio", "--agent", "tests.slow_agent:AGENT"]
    argv += ["--port", "0", "--model-url", "ws://127.0.0.1:9/v1/realtime"]
    async with running(argv) as bridge:
        await bridge.wait_for("loading")
        bridge.process.send_signal(signum)
        with trio.fail_after(10):
            await bridge.process.wait()
    name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
    assert bridge.process.returncode == 0, bridge.err  # SIGTERM's default would be -15, silently
    assert bridge.err == f"kernl-trio twilio: stopped by {name} while starting\n"


async def test_a_second_signal_during_the_drain_ends_the_calls_at_once() -> None:
    async with trio.open_nursery() as nursery:
        model_server = await start_model_server(nursery)
        async with bridge_process(model_server.url, "--grace", "60") as bridge:
            peers = []
            for index in range(2):
                peer: TwilioPeer = await nursery.start(
                    TwilioPeer(f"ws://127.0.0.1:{bridge.port}/twilio").run
                )
                peers.append(peer)
                await model_side(model_server, index)
            await bridge.wait_for(r"(?s)(call started.*){2}")
            bridge.process.send_signal(signal.SIGINT)
            await bridge.wait_for("draining: no new calls")
            began = trio.current_time()
            bridge.process.send_signal(signal.SIGINT)  # impatient: a second Ctrl-C
            await bridge.wait_for("SIGINT again: ending 2 calls now")
            with trio.fail_after(10):
                for peer in peers:
                    await peer.closed.wait()  # the bridge hung up on both callers
            assert trio.current_time() - began < 10  # not the 60 s grace period
        nursery.cancel_scope.cancel()
    assert bridge.process.returncode == 0, bridge.err
    assert bridge.err.count("outcome=completed reason=hung up by the bridge") == 2
    assert "Traceback" not in bridge.err and "ExceptionGroup" not in bridge.err


async def test_the_whole_phone_path_runs_key_free_against_the_embedded_server(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    # what `kernl-trio serve` + `kernl-trio twilio --model-url URL` run: no key, no network
    from kernl_trio.cli.twilio import build_model
    from kernl_trio.demo.script import server_script
    from kernl_trio.local.embedded import EmbeddedServer
    from kernl_trio.local.rules import synthesize_speech
    from kernl_trio.protocol import PCMU_8K

    embedded = EmbeddedServer(server_script(), transcripts=("hello",))
    await nursery.start(embedded.run)
    model = build_model(AGENT, embedded.url)
    bridge: TwilioServer = await nursery.start(partial(serve_twilio, AGENT, model=model))
    peer: TwilioPeer = await nursery.start(TwilioPeer(f"ws://127.0.0.1:{bridge.port}/twilio").run)
    await peer.say(synthesize_speech("hello there", PCMU_8K))
    await peer.wait_received("mark", count=100)  # 2 s of the answer
    await trio.sleep(5)  # the caller hears it all (it acknowledges each mark as it is played)
    await peer.hang_up()
    await wait_until(lambda: bool(bridge.history))
    record = bridge.history[-1]
    assert (record.outcome, record.reason) == ("completed", "stop")
    # "Hello! Ask me about the weather anywhere.", spoken in u-law and passed through
    assert len(peer.received_audio) >= 2 * 8000
    assert record.statistics.marks_acknowledged >= 100 and record.statistics.malformed == 0


async def test_junk_before_start_is_still_one_warning_that_says_what_came(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    model_server = await start_model_server(nursery)
    bridge = await start_bridge(nursery, model_server)
    caplog.set_level(logging.INFO, "kernl_trio")
    peer = await dial(nursery, bridge, send_start=False)
    for _ in range(50):  # a scanner that talks
        peer.send_nowait("GET / HTTP/1.1")
    peer.send_nowait({"event": "start", "start": {}})
    await peer.disconnect()
    await wait_until(lambda: bool(bridge.history))
    records = [r for r in caplog.records if r.name.startswith("kernl_trio.channels")]
    assert [r.levelname for r in records] == ["WARNING"], [r.getMessage() for r in records]
    message = records[0].getMessage()
    assert "the stream ended before its start message (51 malformed messages" in message
    assert "the first: not JSON" in message
    assert bridge.history[-1].statistics.malformed == 51


async def test_a_stream_that_never_starts_is_dropped_with_the_timeout_as_reason(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    model_server = await start_model_server(nursery)
    model = OpenAIRealtimeModel(base_url=model_server.url)
    bridge: TwilioServer = await nursery.start(
        partial(serve_twilio, AGENT, model=model, start_timeout=3)
    )
    caplog.set_level(logging.INFO, "kernl_trio")
    peer = await dial(nursery, bridge, send_start=False)  # "connected", then nothing
    await peer.closed.wait()
    await wait_until(lambda: bool(bridge.history))
    assert bridge.history[-1].reason == "not a call: no start message within 3 s"
    (warning,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert warning.exc_info is None and "no start message within 3 s" in warning.getMessage()


async def test_a_caller_sending_junk_non_stop_does_not_flood_the_log(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    model_server = await start_model_server(nursery)
    bridge = await start_bridge(nursery, model_server)
    peer = await dial(nursery, bridge)
    await model_side(model_server)
    caplog.set_level(logging.INFO, "kernl_trio")
    for _ in range(3000):
        peer.send_nowait("not JSON")
    await trio.sleep(1)
    await peer.hang_up()
    await wait_until(lambda: bool(bridge.history))
    record = bridge.history[-1]
    assert (record.outcome, record.statistics.malformed) == ("completed", 3000)
    lines = [r.getMessage() for r in caplog.records if "malformed message" in r.getMessage()]
    assert len(lines) == 10 + 3  # the first ten, then the 1000th, 2000th and 3000th
    assert lines[9].endswith("more are counted, and logged 1 in 1000")
    assert lines[-1].endswith("; 3000 so far")


def test_workers_caught_starting_by_the_stop_signal_count_as_stopped() -> None:
    # a worker still importing when the supervisor forwards SIGTERM exits 130 ("interrupted")
    # or dies of the signal: the service was asked to stop, and it did
    assert workers_status([0, 130], stopping=True) == 0
    assert workers_status([-signal.SIGTERM, 0], stopping=True) == 0
    assert workers_status([0, 130], stopping=False) == 1
    assert workers_status([0, 3], stopping=False) == 3
    assert workers_status([1, 3], stopping=True) == 3


async def test_two_streams_with_one_stream_sid_are_both_counted(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # a replayed or forged start: the second call must not hide the first, nor the first's
    # end remove the second from the live calls
    model_server = await start_model_server(nursery)
    bridge = await start_bridge(nursery, model_server)
    sid = "MZ" + "a" * 32
    first = await dial(nursery, bridge, stream_sid=sid)
    await model_side(model_server, 0)
    second = await dial(nursery, bridge, stream_sid=sid)
    await model_side(model_server, 1)
    assert bridge.statistics().active == 2
    assert "which a live call already has" in caplog.text
    await first.hang_up()
    await wait_until(lambda: len(bridge.history) == 1)
    assert bridge.statistics().active == 1
    assert bridge.calls[sid].channel.ended is False
    await second.hang_up()
    await wait_until(lambda: len(bridge.history) == 2)
    assert bridge.statistics().active == 0 and bridge.calls == {}


def _workers_of(supervisor_pid: int) -> list[int]:
    """The processes started with ``--supervisor-pid supervisor_pid`` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                argv = cmdline.read().split(b"\0")
        except OSError:
            continue
        if b"--supervisor-pid" in argv and str(supervisor_pid).encode() in argv:
            found.append(int(entry))
    return found


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (an exited process nobody has reaped yet is a zombie, ``Z``)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the workers in /proc")
async def test_workers_whose_supervisor_is_killed_drain_and_exit() -> None:
    # SIGKILL leaves the supervisor no chance to forward anything: without a watch on it the
    # workers would answer calls on the shared port forever, with nobody left to stop them
    async with trio.open_nursery() as nursery:
        model_server = await start_model_server(nursery)
        async with bridge_process(model_server.url, "--workers", "2", "--grace", "5") as bridge:
            await bridge.wait_for(r"2 workers answering on")
            workers = _workers_of(bridge.process.pid)
            assert len(workers) == 2
            try:
                bridge.process.kill()
                with trio.fail_after(10):
                    while any(_running(pid) for pid in workers):  # noqa: ASYNC110
                        await trio.sleep(0.1)
                with pytest.raises(OSError):  # nobody answers on the port any more
                    await trio.open_tcp_stream("127.0.0.1", bridge.port)
            finally:
                for pid in _workers_of(bridge.process.pid):
                    os.kill(pid, signal.SIGKILL)
        nursery.cancel_scope.cancel()
