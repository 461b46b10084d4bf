"""Cancellation at every checkpoint (issue 12, part 1).

A trio Instrument counts the task steps of one scripted conversation (the steps of the test's
task and of every task below it: the session's, the connection's, the tools'; not the
server's). Then, for N = 1 .. total, the conversation runs again and the instrument cancels
the outer scope at its Nth step. After each run: the scope caught a Cancelled (or the run
ended before step N, or one typed kernl_trio error came out), no task of the session is
alive, the server saw the socket close, the channel is closed, every tool's ``finally`` ran,
and no file descriptor is left open.

Quick profile: about ``QUICK_POINTS`` values of N per conversation. ``KERNL_RELIABILITY=
thorough``: every N.
"""

from __future__ import annotations

import contextlib

import pytest
import trio
import trio.lowlevel
import trio.testing
import trio_websocket

from kernl_trio import RealtimeAgent
from kernl_trio.channels.twilio import TwilioServer, serve_twilio
from kernl_trio.errors import KernlTrioError
from kernl_trio.providers.openai import OpenAIRealtimeModel
from kernl_trio.testing import AudioReply, Reply, ScriptedServer, ToolCallReply, TwilioPeer

from ..helpers import library_tasks
from ._scenarios import (
    FAKE_API_KEY,
    SCENARIOS,
    TWILIO_OPTIONS,
    Run,
    Scenario,
    ToolLog,
    open_fds,
    run_scenario,
    sample,
    start,
    twilio_peer,
)

QUICK_POINTS = 8

SCHEDULES: dict[str, int] = {}
"""Schedules run per scenario in this process (read by docs/reliability.md's command)."""


class CancelAtStep(trio.abc.Instrument):
    """Counts the steps of ``root`` and its descendants; cancels ``scope`` at step ``at``."""

    def __init__(self, at: int | None, scope: trio.CancelScope) -> None:
        self.at = at
        self.scope = scope
        self.root: trio.lowlevel.Task | None = None
        self.steps = 0
        self._ours: dict[trio.lowlevel.Task, bool] = {}

    def _is_ours(self, task: trio.lowlevel.Task) -> bool:
        known = self._ours.get(task)
        if known is None:
            walk: trio.lowlevel.Task | None = task
            while walk is not None and walk is not self.root:
                nursery = walk.parent_nursery
                walk = nursery.parent_task if nursery is not None else None
            known = self._ours[task] = walk is not None
        return known

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if self.root is None or not self._is_ours(task):
            return
        self.steps += 1
        if self.steps == self.at:
            self.scope.cancel()


async def _one_run(
    scenario: Scenario, at: int | None, form: str = "open_session"
) -> tuple[int, str]:
    """Run ``scenario`` once, cancelled at step ``at``; check the promises; return the
    steps counted and how it ended."""
    async with trio.open_nursery() as servers:
        run: Run = await start(servers, scenario)
        tasks_before, fds_before = library_tasks(), open_fds()
        outcome = "completed"
        with trio.CancelScope() as scope:
            instrument = CancelAtStep(at, scope)

            async def counted() -> None:
                instrument.root = trio.lowlevel.current_task()
                await run_scenario(scenario, run.server, run, form=form)

            trio.lowlevel.add_instrument(instrument)
            try:
                async with trio.open_nursery() as inner:
                    inner.start_soon(counted)
            except KernlTrioError as exc:
                outcome = f"typed {type(exc).__name__}"
            finally:
                trio.lowlevel.remove_instrument(instrument)
        if scope.cancelled_caught:
            outcome = "cancelled"
        assert library_tasks() == tasks_before, f"{scenario.name} at step {at}: tasks leaked"
        assert run.channel.closed, f"{scenario.name} at step {at}: channel open"
        assert run.tools.all_wound_up, f"{scenario.name} at step {at}: {run.tools}"
        await trio.sleep(1)  # the server notices the close
        for conn in run.server.connections:
            assert conn.closed.is_set(), f"{scenario.name} at step {at}: socket open"
        servers.cancel_scope.cancel()
    assert open_fds() <= fds_before, f"{scenario.name} at step {at}: fd leaked"
    return instrument.steps, outcome


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_cancel_at_every_checkpoint(
    scenario: Scenario, autojump_clock: trio.testing.MockClock
) -> None:
    total, outcome = await _one_run(scenario, None)
    assert outcome == "completed"
    outcomes: dict[str, int] = {}
    points = sample(total, QUICK_POINTS)
    for at in points:
        _, outcome = await _one_run(scenario, at)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    SCHEDULES[scenario.name] = len(points)
    print(f"\n{scenario.name}: {total} steps, {len(points)} schedules, {outcomes}")
    # a run takes a few steps more or fewer than the counting run (socket timing): the last
    # values of N may fall after its end
    assert set(outcomes) <= {"cancelled", "completed"}, outcomes
    assert outcomes.get("cancelled", 0) >= len(points) - max(2, len(points) // 10)


async def test_cancel_the_nursery_start_form_at_every_checkpoint(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The same, for ``await nursery.start(session.run)`` and ``session.close()``."""
    for scenario in SCENARIOS:
        total, outcome = await _one_run(scenario, None, "nursery_start")
        assert outcome == "completed"
        outcomes: dict[str, int] = {}
        points = sample(total, QUICK_POINTS // 2)
        for at in points:
            _, outcome = await _one_run(scenario, at, "nursery_start")
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        SCHEDULES[f"{scenario.name} (nursery.start)"] = len(points)
        print(
            f"\n{scenario.name} (nursery.start): {total} steps, {len(points)} schedules, {outcomes}"
        )
        assert set(outcomes) <= {"cancelled", "completed"}, outcomes


# -- a Twilio call: the bridge is cancelled at each of its steps ---------------------------------


def _bridge_tasks() -> set[trio.lowlevel.Task]:
    """Live tasks except the model server's and the simulated Twilio peer's."""
    return {
        task for task in library_tasks() if not any("_peer_call" in t.name for t in _ancestry(task))
    }


def _ancestry(task: trio.lowlevel.Task) -> list[trio.lowlevel.Task]:
    chain = [task]
    while chain[-1].parent_nursery is not None:
        chain.append(chain[-1].parent_nursery.parent_task)
    return chain


async def _peer_call(peer: TwilioPeer) -> None:
    """The simulated caller: whatever the bridge does to its socket ends the call."""
    with contextlib.suppress(trio_websocket.ConnectionRejected, trio_websocket.HandshakeError):
        with contextlib.suppress(OSError, trio.BrokenResourceError):
            await peer.run()


async def _twilio_run(at: int | None) -> tuple[int, str]:
    tools = ToolLog()
    agent = RealtimeAgent("phone", name="Phone", instructions="x", tools=tools.tools())
    reply = Reply.of(ToolCallReply("slow"), AudioReply("Hello there.", ms=1500), realtime=True)
    async with trio.open_nursery() as outer:
        model_server: ScriptedServer = await outer.start(ScriptedServer([reply]).run)
        model = OpenAIRealtimeModel(api_key=FAKE_API_KEY, base_url=model_server.url)
        tasks_before, fds_before = _bridge_tasks(), open_fds()
        peer: TwilioPeer | None = None
        outcome = "completed"
        with trio.CancelScope() as scope:
            instrument = CancelAtStep(at, scope)

            async def counted(task_status: trio.TaskStatus[TwilioServer]) -> None:
                instrument.root = trio.lowlevel.current_task()
                await serve_twilio(agent, model=model, task_status=task_status, **TWILIO_OPTIONS)

            trio.lowlevel.add_instrument(instrument)
            try:
                async with trio.open_nursery() as inner:
                    bridge: TwilioServer = await inner.start(counted)
                    peer = twilio_peer(bridge.port)
                    outer.start_soon(_peer_call, peer)
                    conn = await model_server.connection()
                    await conn.expect("session.update")
                    conn.start_response({"type": "response.create"})
                    await peer.wait_received("media")
                    await trio.sleep(0.5)
                    await conn.speech_started()
                    await peer.wait_received("clear")
                    await peer.hang_up()
                    await trio.sleep(1)
                    inner.cancel_scope.cancel()
            except KernlTrioError as exc:
                outcome = f"typed {type(exc).__name__}"
            finally:
                trio.lowlevel.remove_instrument(instrument)
        if scope.cancelled_caught:
            outcome = "cancelled"
        where = f"twilio call at step {at}"
        assert _bridge_tasks() == tasks_before, f"{where}: tasks leaked"
        assert tools.all_wound_up, f"{where}: {tools}"
        await trio.sleep(6)  # the peer and the model server notice the closes
        if peer is not None:
            assert peer.closed.is_set() or not peer.received, f"{where}: Twilio's socket open"
        for conn in model_server.connections:
            assert conn.closed.is_set(), f"{where}: model socket open"
        outer.cancel_scope.cancel()
    assert open_fds() <= fds_before, f"{where}: fd leaked"
    return instrument.steps, outcome


async def test_cancel_a_twilio_call_at_every_checkpoint(
    autojump_clock: trio.testing.MockClock,
) -> None:
    total, outcome = await _twilio_run(None)
    assert outcome == "completed"
    outcomes: dict[str, int] = {}
    points = sample(total, QUICK_POINTS)
    for at in points:
        _, outcome = await _twilio_run(at)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    SCHEDULES["twilio_call"] = len(points)
    print(f"\ntwilio_call: {total} steps, {len(points)} schedules, {outcomes}")
    assert set(outcomes) <= {"cancelled", "completed"}, outcomes
