"""A small soak in the suite (issue 12, part 5): benchmarks/soak.py measures memory growth
over 500 sessions x 10 minutes; here a few sessions through minutes of turns, tools and
barge-ins must leave no task, fd or server connection behind."""

from __future__ import annotations

import trio.testing

from benchmarks.soak import Soak

from ._scenarios import FAKE_API_KEY, THOROUGH


async def test_a_small_soak_leaves_nothing_behind(autojump_clock: trio.testing.MockClock) -> None:
    sessions, minutes = (50, 5) if THOROUGH else (10, 2)
    soak = Soak(sessions, minutes, turn_every=20, trace=False, api_key=FAKE_API_KEY)
    result = await soak.main()
    turns = result["turns"]
    assert sum(turns.values()) == sessions * minutes * 3
    assert min(turns.values()) >= sessions * minutes  # spoken, tool and barge-in turns alike
    tasks_before, tasks_after = result["tasks_before_after"]
    assert tasks_after == tasks_before
    fds_before, fds_after = result["fds_before_after"]
    assert fds_after == fds_before
    assert result["server_connections_open_after"] == 0
