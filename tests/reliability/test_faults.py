"""A fault after every server event (issue 12, part 2).

For each scripted conversation and each server event i, the server (or a TCP proxy between
it and the client) breaks the connection right after writing event i:

- ``drop``: the TCP connection is closed without a WebSocket close;
- ``reset``: the TCP connection is reset (RST, SO_LINGER 0);
- ``close_1011``: a WebSocket close with code 1011 (internal error);
- ``stall``: the proxy stops forwarding in both directions and keeps both sockets open;
- ``no_read``: the proxy stops forwarding what the client sends (the server goes on).

Each run must end in exactly one ``ConnectionLost`` out of the session block; a subscriber
iterating outside the block sees its iteration end; every tool's ``finally`` ran; no task,
socket or fd of the session is left; the channel is closed.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing
import trio_websocket

from kernl_trio import RealtimeAgent, open_session
from kernl_trio.channels.twilio import TwilioOptions, TwilioServer, serve_twilio
from kernl_trio.errors import ConnectionLost, HandshakeFailed, KernlTrioError
from kernl_trio.limits import CLOSE_TIMEOUT
from kernl_trio.providers.openai import OpenAIRealtimeModel
from kernl_trio.session import RealtimeSession
from kernl_trio.testing import (
    AudioReply,
    Reply,
    ScriptedServer,
    ServerConnection,
    ToolCallReply,
    TwilioPeer,
    VirtualChannel,
)

from ._scenarios import (
    FAKE_API_KEY,
    SCENARIOS,
    THOROUGH,
    TWILIO_OPTIONS,
    Run,
    Scenario,
    ToolLog,
    open_fds,
    run_scenario,
    sample,
    twilio_peer,
)

FAULTS = ("drop", "reset", "close_1011", "stall", "no_read")
QUICK_POINTS = 2
LINGER = 120.0  # longer than the liveness watchdog needs to give up on a silent peer

INJECTED: dict[str, int] = {}
ERRORS: list[BaseException] = []
"""Every exception the faulty runs raised (the secrets test reads their text)."""


def library_tasks() -> set[trio.lowlevel.Task]:
    """Every live task except the scripted server's and the proxy's."""

    def walk(task: trio.lowlevel.Task) -> set[trio.lowlevel.Task]:
        if "ScriptedServer.run" in task.name or "Proxy.run" in task.name:
            return set()
        found = {task}
        for nursery in task.child_nurseries:
            for child in nursery.child_tasks:
                found |= walk(child)
        return found

    root = trio.lowlevel.current_root_task()
    assert root is not None
    return walk(root)


class Proxy:
    """A TCP relay whose two directions a fault can freeze."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.frozen_up = False  # client -> server
        self.frozen_down = False  # server -> client
        self._thaw = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[Proxy] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            task_status.started(self)
            await trio.serve_listeners(self._relay, listeners, handler_nursery=nursery)

    async def _relay(self, client: trio.SocketStream) -> None:
        async with client, await trio.open_tcp_stream("127.0.0.1", self.target_port) as server:
            async with trio.open_nursery() as nursery:

                async def pump(src: trio.SocketStream, dst: trio.SocketStream, up: bool) -> None:
                    while True:
                        try:
                            data = await src.receive_some(65536)
                        except trio.BrokenResourceError:
                            data = b""
                        while self.frozen_up if up else self.frozen_down:
                            await trio.sleep_forever()
                        if not data:
                            nursery.cancel_scope.cancel()
                            return
                        try:
                            await dst.send_all(data)
                        except (trio.BrokenResourceError, trio.ClosedResourceError):
                            nursery.cancel_scope.cancel()
                            return

                nursery.start_soon(pump, client, server, True)
                nursery.start_soon(pump, server, client, False)


class FaultyConnection(ServerConnection):
    server: FaultyServer

    async def _write_loop(self) -> None:
        sent = 0
        async for frame in self._out_receive:
            try:
                await self._ws.send_message(frame)
            except Exception:
                return
            sent += 1
            self.server.events_sent = max(self.server.events_sent, sent)
            if sent == self.server.fault_after:
                self.server.fired = True
                await self._fault(self.server.fault)

    async def _fault(self, fault: str) -> None:
        proxy = self.server.proxy
        if fault == "drop":
            await self.drop()
        elif fault == "reset":
            stream = self._ws._stream
            assert isinstance(stream, trio.SocketStream)
            stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await stream.aclose()
        elif fault == "close_1011":
            await self.close(1011, "internal error")
        elif fault == "stall":
            assert proxy is not None
            proxy.frozen_up = proxy.frozen_down = True
        elif fault == "no_read":
            assert proxy is not None
            proxy.frozen_up = True
            return  # the server goes on writing
        await trio.sleep_forever()


class FaultyServer(ScriptedServer):
    connection_class = FaultyConnection

    def __init__(self, *args: Any, fault: str = "drop", fault_after: int = 0, **kw: Any):
        super().__init__(*args, **kw)
        self.fault = fault
        self.fault_after = fault_after
        self.fired = False
        self.events_sent = 0
        self.proxy: Proxy | None = None


async def _one_run(scenario: Scenario, fault: str, after: int) -> tuple[str, int]:
    async with trio.open_nursery() as servers:
        server = FaultyServer(
            scenario.replies, session=scenario.session, fault=fault, fault_after=after
        )
        await servers.start(server.run)
        url = server.url
        if fault in ("stall", "no_read"):
            server.proxy = await servers.start(Proxy(server.port).run)
            url = f"ws://127.0.0.1:{server.proxy.port}/v1/realtime"
        run = Run(server, VirtualChannel(), ToolLog())
        tasks_before, fds_before = library_tasks(), open_fds()
        ended: list[str] = []
        published: list[Any] = []
        got: dict[bool, list[Any]] = {False: [], True: []}

        async def watch(stream: Any, batches: bool) -> None:
            try:
                async with stream:
                    async for item in stream:
                        got[batches].extend(item if batches else [item])
                ended.append("ended")
            except BaseException as exc:
                ended.append(repr(exc))
                raise

        def watch_both(session: RealtimeSession) -> None:
            publish = session._events.publish

            def recording(event: Any) -> None:
                published.append(event)
                publish(event)

            session._events.publish = recording  # type: ignore[method-assign]
            watchers.start_soon(watch, session.events(), False)
            watchers.start_soon(watch, session.event_batches(), True)

        async with trio.open_nursery() as watchers:
            outcome = "completed"
            try:
                with trio.fail_after(LINGER * 3):
                    await run_scenario(
                        scenario,
                        server,
                        run,
                        linger=LINGER,
                        url=url,
                        on_open=watch_both,
                    )
            except ConnectionLost as exc:
                ERRORS.append(exc)
                assert type(exc) is ConnectionLost
                if fault == "close_1011":
                    assert exc.code == 1011, exc
                outcome = "lost"
            except HandshakeFailed as exc:
                ERRORS.append(exc)
                assert run.session is None  # the block was never entered
                outcome = "lost before the block"
        where = f"{scenario.name}, {fault} after event {after}"
        assert ended in ([], ["ended", "ended"]), f"{where}: the subscribers {ended}"
        # every event published while they read reached both, in order, up to the close
        assert got[False] == published, f"{where}: events() lost events"
        assert got[True] == published, f"{where}: event_batches() lost events"
        if server.fired:
            assert outcome.startswith("lost"), f"{where}: {outcome}"
        assert library_tasks() == tasks_before, f"{where}: tasks leaked"
        assert run.channel.closed, f"{where}: channel open"
        assert run.tools.all_wound_up, f"{where}: {run.tools}"
        servers.cancel_scope.cancel()
    assert open_fds() <= fds_before, f"{where}: fd leaked"
    return outcome, server.events_sent


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_fault_after_every_server_event(
    scenario: Scenario, autojump_clock: trio.testing.MockClock
) -> None:
    for fault in FAULTS:
        outcome, total = await _one_run(scenario, fault, 0)
        assert outcome == "completed" and total > 0
        points = sample(total, QUICK_POINTS)
        label = f"{scenario.name}/{fault}"
        await _inject(label, f"{total} server events", points, partial(_one_run, scenario, fault))


async def _inject(
    label: str, events: str, points: list[int], run: Callable[[int], Awaitable[tuple[str, int]]]
) -> None:
    """``run(after)`` for every fault point; the outcomes are tallied, recorded and printed.

    A conversation's length varies by an event or two with scheduling (a protected tool's
    output races the close): a point past the end of a run fires nothing, and that is the
    only way a run may complete.
    """
    outcomes: dict[str, int] = {}
    for after in points:
        outcome, sent = await run(after)
        if outcome == "completed":
            assert sent < after, (label, after, sent)
            outcome = "completed before the fault point"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    INJECTED[label] = len(points)
    print(f"\n{label}: {events}, {len(points)} faults, {outcomes}")


@pytest.mark.parametrize("fault", ["stall", "no_read"])
async def test_leaving_the_block_with_a_stalled_peer_is_bounded(
    fault: str, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """The close handshake with a peer that answers nothing takes CLOSE_TIMEOUT, no more,
    and leaving the block (which asked for the close) raises nothing."""
    scenario = SCENARIOS[1]
    server = await nursery.start(ScriptedServer(scenario.replies).run)
    proxy = await nursery.start(Proxy(server.port).run)
    run = Run(server, VirtualChannel(), ToolLog())
    tasks_before = library_tasks()
    agent = RealtimeAgent(id="r", name="R", instructions="x", tools=run.tools.tools())
    model = OpenAIRealtimeModel(api_key=FAKE_API_KEY, base_url=f"ws://127.0.0.1:{proxy.port}/v1")
    async with open_session(agent, model=model, channel=run.channel) as session:
        await scenario.drive(session, server, run.channel)
        proxy.frozen_up = True
        proxy.frozen_down = fault == "stall"
        left = trio.current_time()
    assert trio.current_time() - left == pytest.approx(CLOSE_TIMEOUT)
    assert library_tasks() == tasks_before
    assert run.channel.closed


# -- a Twilio call: the caller goes away, or the model's socket drops, at each instant ----------


async def _twilio_fault(fault: str, at: float) -> str:
    tools = ToolLog()
    agent = RealtimeAgent("phone", name="Phone", instructions="x", tools=tools.tools())
    reply = Reply.of(ToolCallReply("slow"), AudioReply("Hello there.", ms=1500), realtime=True)
    async with trio.open_nursery() as outer:
        model_server = await outer.start(ScriptedServer([reply]).run)
        model = OpenAIRealtimeModel(api_key=FAKE_API_KEY, base_url=model_server.url)
        bridge: TwilioServer = await outer.start(
            partial(serve_twilio, agent, model=model, **TWILIO_OPTIONS)
        )
        await trio.lowlevel.checkpoint()
        tasks_before, fds_before = library_tasks(), open_fds()
        peer = twilio_peer(bridge.port)
        outer.start_soon(_caller, peer)
        conn = await model_server.connection()
        await conn.expect("session.update")
        start = trio.current_time()

        async def script() -> None:
            conn.start_response({"type": "response.create"})
            await trio.sleep(0.8)
            await conn.speech_started()
            await trio.sleep(2)
            await peer.hang_up()

        async with trio.open_nursery() as acts:
            acts.start_soon(script)
            await trio.sleep_until(start + at)
            acts.cancel_scope.cancel()
        if fault == "caller_disconnects":
            with trio.move_on_after(10):
                await peer.disconnect()
        else:
            await conn.drop()
        with trio.fail_after(30):
            while bridge.statistics().active:  # noqa: ASYNC110
                await trio.sleep(0.01)
        await trio.sleep(6)
        where = f"twilio call, {fault} at {at:.2f} s"
        [record] = bridge.history
        if record.outcome == "failed":
            assert isinstance(record.error, KernlTrioError), f"{where}: {record.error!r}"
        assert tools.all_wound_up, f"{where}: {tools}"
        assert peer.closed.is_set(), f"{where}: Twilio's socket open"
        assert conn.closed.is_set(), f"{where}: the model's socket open"
        assert library_tasks() - tasks_before == set(), f"{where}: tasks leaked"
        outer.cancel_scope.cancel()
    assert open_fds() <= fds_before, f"{where}: fd leaked"
    return record.outcome


async def _caller(peer: TwilioPeer) -> None:
    with contextlib.suppress(trio_websocket.ConnectionClosed, OSError, trio.BrokenResourceError):
        await peer.run()


@pytest.mark.parametrize("fault", ["caller_disconnects", "model_drops"])
async def test_twilio_call_fault_at_every_instant(
    fault: str, autojump_clock: trio.testing.MockClock
) -> None:
    instants = [k * 0.05 for k in range(0, 70)]  # 0 .. 3.45 s, every 50 ms
    points = [instants[i - 1] for i in sample(len(instants), QUICK_POINTS + 2)]
    outcomes: dict[str, int] = {}
    for at in points:
        outcome = await _twilio_fault(fault, at)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    INJECTED[f"twilio_call/{fault}"] = len(points)
    print(f"\ntwilio_call {fault}: {len(points)} faults, {outcomes}")


# -- a Twilio call: the model's socket breaks in each of the five ways after each event --------


async def _twilio_model_fault(fault: str, after: int) -> tuple[str, int]:
    """A call through ``serve_twilio`` whose model server breaks the connection after its
    ``after``-th event (0: never). The caller stays on the line until the call ends, or
    hangs up after LINGER when nothing broke."""
    tools = ToolLog()
    agent = RealtimeAgent("phone", name="Phone", instructions="x", tools=tools.tools())
    reply = Reply.of(ToolCallReply("slow"), AudioReply("Hello there.", ms=1500), realtime=True)
    async with trio.open_nursery() as outer:
        server = FaultyServer([reply], fault=fault, fault_after=after)
        await outer.start(server.run)
        url = server.url
        if fault in ("stall", "no_read"):
            server.proxy = await outer.start(Proxy(server.port).run)
            url = f"ws://127.0.0.1:{server.proxy.port}/v1/realtime"
        model = OpenAIRealtimeModel(api_key=FAKE_API_KEY, base_url=url)
        bridge: TwilioServer = await outer.start(
            partial(serve_twilio, agent, model=model, **TWILIO_OPTIONS)
        )
        await trio.lowlevel.checkpoint()
        tasks_before, fds_before = library_tasks(), open_fds()
        peer = twilio_peer(bridge.port)
        outer.start_soon(_caller, peer)
        where = f"twilio call, {fault} after model event {after}"

        async def script() -> None:
            conn = await server.connection()
            await conn.expect("session.update")
            conn.start_response({"type": "response.create"})
            await trio.sleep(0.8)
            await conn.speech_started()

        with trio.move_on_after(LINGER if after else 5):  # the counting run: the answer's end
            async with trio.open_nursery() as acts:
                acts.start_soon(script)
                await trio.sleep(0.1)
                while bridge.statistics().active:  # noqa: ASYNC110
                    await trio.sleep(0.05)
                acts.cancel_scope.cancel()
        if bridge.statistics().active:
            await peer.hang_up()
        with trio.fail_after(30):
            while bridge.statistics().active:  # noqa: ASYNC110
                await trio.sleep(0.01)
        await trio.sleep(6)  # the caller and the model server notice the closes
        [record] = bridge.history
        if server.fired:
            assert record.outcome == "failed", f"{where}: {record}"
        if record.outcome == "failed":
            assert isinstance(record.error, ConnectionLost | HandshakeFailed), (
                f"{where}: {record.error!r}"
            )
            if fault == "close_1011" and isinstance(record.error, ConnectionLost):
                assert record.error.code == 1011, f"{where}: {record.error!r}"
        assert tools.all_wound_up, f"{where}: {tools}"
        assert peer.closed.is_set(), f"{where}: Twilio's socket open"
        if server.proxy is None:  # (a frozen proxy keeps the server's end open; fds tell)
            for conn in server.connections:
                assert conn.closed.is_set(), f"{where}: the model's socket open"
        assert library_tasks() - tasks_before == set(), f"{where}: tasks leaked"
        outer.cancel_scope.cancel()
    assert open_fds() <= fds_before, f"{where}: fd leaked"
    return record.outcome, server.events_sent


_TWILIO_MODEL_EVENTS: list[int] = []
"""The model events of a call nothing breaks, counted once per process."""


@pytest.mark.parametrize("fault", FAULTS)
async def test_twilio_call_model_fault_after_every_server_event(
    fault: str, autojump_clock: trio.testing.MockClock
) -> None:
    if not _TWILIO_MODEL_EVENTS:
        outcome, total = await _twilio_model_fault(fault, 0)
        assert outcome == "completed" and total > 0
        _TWILIO_MODEL_EVENTS.append(total)
    total = _TWILIO_MODEL_EVENTS[0]
    # quick: one fault in the middle of the call (the stall and the deaf peer take 45 s of
    # call audio each to be given up on)
    points = sample(total, 1) if THOROUGH else [total // 2]
    label = f"twilio_call/model {fault}"
    await _inject(label, f"{total} model events", points, partial(_twilio_model_fault, fault))


# -- a Twilio caller whose socket stalls, or who stops reading ----------------------------------


@pytest.mark.parametrize("fault", ["stall", "no_read"])
async def test_twilio_caller_stalls_or_stops_reading(
    fault: str, autojump_clock: trio.testing.MockClock
) -> None:
    """A proxy between the simulated caller and the bridge freezes 1 s into a minute-long
    answer: both ways (``stall``), or only what the bridge writes (``no_read``: the caller
    goes on sending audio). A stalled caller is given up on: the call ends, its tool's
    ``finally`` runs, the model's socket closes. A caller who only stops reading keeps the
    call alive (the bridge holds its playback back instead of queueing, the model's audio
    waits); when the caller hangs up, the call ends the same way. Nothing of the bridge is
    left either way."""
    tools = ToolLog()
    agent = RealtimeAgent("phone", name="Phone", instructions="x", tools=tools.tools())
    reply = Reply.of(ToolCallReply("slow"), AudioReply("Hello there.", ms=60_000), realtime=True)
    async with trio.open_nursery() as outer:
        model_server: ScriptedServer = await outer.start(ScriptedServer([reply]).run)
        model = OpenAIRealtimeModel(api_key=FAKE_API_KEY, base_url=model_server.url)
        bridge: TwilioServer = await outer.start(
            partial(serve_twilio, agent, model=model, **TWILIO_OPTIONS)
        )
        proxy: Proxy = await outer.start(Proxy(bridge.port).run)
        await trio.lowlevel.checkpoint()
        tasks_before = library_tasks()
        peer = twilio_peer(proxy.port)
        outer.start_soon(_caller, peer)
        conn = await model_server.connection()
        await conn.expect("session.update")
        conn.start_response({"type": "response.create"})
        await trio.sleep(1)
        frozen = trio.current_time()
        proxy.frozen_down = True
        proxy.frozen_up = fault == "stall"
        if fault == "no_read":
            await trio.sleep(60 if THOROUGH else 15)
            assert bridge.statistics().active == 1  # the caller is still talking
            await peer.hang_up()
        with trio.fail_after(30):
            while bridge.statistics().active:  # noqa: ASYNC110
                await trio.sleep(0.1)
        ended = trio.current_time() - frozen
        await trio.sleep(6)  # the model server notices the close
        [record] = bridge.history
        if record.outcome == "failed":
            assert isinstance(record.error, KernlTrioError), record.error
        if fault == "no_read":
            assert record.reason == "stop", record
        # play() waits beyond outbox_limit messages; one chunk's media and mark may go over
        assert record.statistics.outbox <= TwilioOptions().outbox_limit + 2, record
        assert tools.all_wound_up, tools
        assert conn.closed.is_set(), "the model's socket open"
        # the simulated caller behind the frozen proxy never learns: count it out
        left = {t for t in library_tasks() - tasks_before if "TwilioPeer" not in t.name}
        left = {t for t in left if not any("_caller" in a.name for a in _ancestry(t))}
        assert left == set(), sorted(t.name for t in left)
        print(f"\ntwilio caller {fault}: call ended {ended:.1f} s after the freeze, {record}")
        outer.cancel_scope.cancel()


def _ancestry(task: trio.lowlevel.Task) -> list[trio.lowlevel.Task]:
    chain = [task]
    while chain[-1].parent_nursery is not None:
        chain.append(chain[-1].parent_nursery.parent_task)
    return chain
