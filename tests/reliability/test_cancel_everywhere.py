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

import pytest
import trio
import trio.lowlevel
import trio.testing

from kernl_trio.errors import KernlTrioError

from ..helpers import library_tasks
from ._scenarios import SCENARIOS, Run, Scenario, open_fds, run_scenario, sample, start

QUICK_POINTS = 12

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


async def _one_run(scenario: Scenario, at: int | None) -> tuple[int, str]:
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
                await run_scenario(scenario, run.server, run)

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
    assert set(outcomes) <= {"cancelled", "completed"}, outcomes
    assert outcomes.get("cancelled", 0) >= len(points) - 2
