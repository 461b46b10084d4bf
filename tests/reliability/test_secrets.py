"""Secrets never show (issue 12, part 6).

With every logger at DEBUG, each scenario of this suite runs with a recognisable fake API
key (and the Twilio bridge with a recognisable auth token): normally, cancelled at a few
steps, through each socket fault, and once each the Twilio call's cancellation and faults,
the fuzzed session and call, the stuck parts under real-time audio, and a small soak.
Nothing the run leaves where people look may contain the secret: log records (message,
arguments and formatted traceback), the reprs and strings of the session, the model, the
connection, the options and every exception that came out.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing
import trio_websocket

from benchmarks.soak import Soak
from kernl_trio import RealtimeAgent, open_session
from kernl_trio.channels.twilio import serve_twilio
from kernl_trio.errors import HandshakeFailed
from kernl_trio.providers.openai import OpenAIRealtimeModel
from kernl_trio.testing import ScriptedServer, VirtualChannel
from kernl_trio.testing.twilio_peer import TwilioPeer
from kernl_trio.transports import (
    WebSocketConnector,
    connect_trio_websocket,
    connect_websockets_sansio,
)

from . import test_fuzz, test_load
from ._scenarios import (
    FAKE_API_KEY,
    FAKE_TWILIO_TOKEN,
    SCENARIOS,
    THOROUGH,
    Run,
    Scenario,
    ToolLog,
    run_scenario,
    twilio_signature,
)
from .test_cancel_everywhere import _one_run as cancelled_run
from .test_cancel_everywhere import _twilio_run as cancelled_twilio_run
from .test_faults import (
    ERRORS,
    FAULTS,
    _twilio_fault,
    _twilio_model_fault,
    test_leaving_the_block_with_a_stalled_peer_is_bounded,
)
from .test_faults import _one_run as faulty_run

SECRETS = (FAKE_API_KEY, FAKE_TWILIO_TOKEN, "SECRET")


class Everything(logging.Handler):
    """Every record, formatted as a log file would show it (traceback included)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
        self.lines.append(repr(record.args))


@pytest.fixture
def logs() -> Iterator[Everything]:
    handler = Everything()
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in logging.root.manager.loggerDict}
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in levels:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def leaks(texts: list[str]) -> list[str]:
    return [text for text in texts if any(secret in text for secret in SECRETS)]


def shown(*objects: Any) -> list[str]:
    """What a person sees of these objects: repr, str, and an exception's chain."""
    texts: list[str] = []
    for obj in objects:
        texts += [repr(obj), str(obj)]
        cause = getattr(obj, "__cause__", None) or getattr(obj, "__context__", None)
        if cause is not None:
            texts += shown(cause)
    return texts


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_no_secret_in_a_normal_run(
    scenario: Scenario,
    logs: Everything,
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = await nursery.start(ScriptedServer(scenario.replies, session=scenario.session).run)
    run = Run(server, VirtualChannel(), ToolLog())
    seen: list[Any] = []

    def look(session: Any) -> None:
        seen.extend([session, session.model, session._conn, session._options, session.context])

    await run_scenario(scenario, server, run, on_open=look)
    assert logs.lines, "DEBUG logging captured nothing"
    assert leaks(logs.lines + shown(*seen)) == []


async def test_websockets_debug_log_shows_no_authorization_header(
    logs: Everything, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    scenario = SCENARIOS[0]
    server = await nursery.start(ScriptedServer(scenario.replies).run)
    await run_scenario(scenario, server, Run(server, VirtualChannel(), ToolLog()))
    assert [line for line in logs.lines if FAKE_API_KEY in line] == []


async def test_no_secret_under_cancellation_or_faults(
    logs: Everything, autojump_clock: trio.testing.MockClock
) -> None:
    ERRORS.clear()
    for scenario in SCENARIOS:
        for at in (3, 20, 60):
            await cancelled_run(scenario, at)
        for fault in FAULTS:
            await faulty_run(scenario, fault, 12)
    assert len(ERRORS) >= len(SCENARIOS) * len(FAULTS) - 2
    assert leaks(logs.lines + shown(*ERRORS)) == []


@pytest.mark.parametrize(
    "connector", [connect_websockets_sansio, connect_trio_websocket], ids=["sansio", "trio-ws"]
)
async def test_no_secret_when_the_server_refuses_the_key(
    logs: Everything,
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    connector: WebSocketConnector,
) -> None:
    """A 401 whose body quotes the key back (masked, as OpenAI does) and one that echoes it."""

    async def refuse(stream: trio.SocketStream) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            request += await stream.receive_some(65536)
        auth = [line for line in request.split(b"\r\n") if line.lower().startswith(b"auth")]
        body = b'{"error": {"message": "Incorrect API key provided: ' + auth[0] + b'"}}'
        await stream.send_all(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        await stream.aclose()

    listeners = await nursery.start(partial(trio.serve_tcp, refuse, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    model = OpenAIRealtimeModel(
        api_key=FAKE_API_KEY, base_url=f"ws://127.0.0.1:{port}/v1", connector=connector
    )
    agent = RealtimeAgent(id="s", name="S", instructions="x")
    with pytest.raises(HandshakeFailed) as raised:
        async with open_session(agent, model=model):
            pass
    assert raised.value.status_code == 401
    assert leaks(logs.lines + shown(raised.value, model)) == []


async def test_no_twilio_token_or_key_in_a_call(
    logs: Everything, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    model_server: ScriptedServer = await nursery.start(ScriptedServer().run)
    model = OpenAIRealtimeModel(api_key=FAKE_API_KEY, base_url=model_server.url)
    agent = RealtimeAgent("phone", name="Phone", instructions="Answer the phone.")
    public = "wss://voice.example.com"
    bridge = await nursery.start(
        partial(serve_twilio, agent, model=model, auth_token=FAKE_TWILIO_TOKEN, public_url=public)
    )
    url = f"ws://127.0.0.1:{bridge.port}/twilio"
    bad = TwilioPeer(url, headers=[("X-Twilio-Signature", "bm9wZQ==")])
    with pytest.raises(trio_websocket.ConnectionRejected) as refused:
        await bad.run()
    peer = await nursery.start(
        TwilioPeer(url, headers=[("X-Twilio-Signature", twilio_signature(public + "/twilio"))]).run
    )
    conn = await model_server.connection()
    await conn.expect("session.update")
    await conn.drop()  # the call fails: its error is logged
    await trio.sleep(5)
    await peer.hang_up()
    await trio.sleep(1)
    texts = logs.lines + shown(refused.value, bridge, bridge.statistics(), *bridge.history)
    assert leaks(texts) == []


async def _twilio_cancelled() -> None:
    for at in (5, 60, 250):
        await cancelled_twilio_run(at)


async def _twilio_faults() -> None:
    for fault in ("caller_disconnects", "model_drops"):
        await _twilio_fault(fault, 1.0)
    # (the stall and the deaf peer take 45 s of call audio each: the thorough profile)
    for fault in FAULTS if THOROUGH else ("drop", "reset", "close_1011"):
        await _twilio_model_fault(fault, 10)


async def _soak() -> None:
    soak = Soak(sessions=3, minutes=2, turn_every=20, trace=False, api_key=FAKE_API_KEY)
    result = await soak.main()
    assert sum(result["turns"].values()) == 3 * 6


def _with_nursery(test: Callable[..., Awaitable[None]], *args: Any) -> Callable[[], Any]:
    async def run() -> None:
        async with trio.open_nursery() as nursery:
            await test(*args, nursery, trio.lowlevel.current_clock())
            nursery.cancel_scope.cancel()

    return run


OTHER_PARTS: dict[str, Callable[[], Awaitable[None]]] = {
    "twilio_cancelled": _twilio_cancelled,
    "twilio_faults": _twilio_faults,
    "stalled_close": _with_nursery(test_leaving_the_block_with_a_stalled_peer_is_bounded, "stall"),
    "fuzzed_session": _with_nursery(test_fuzz.test_session_takes_mutated_frames_and_keeps_going, 0),
    "fuzzed_call": _with_nursery(test_fuzz.test_twilio_call_takes_mutated_frames_and_goes_on, 0),
    "stuck_parts": _with_nursery(test_load.test_stuck_part_under_real_time_audio, "all"),
    "stuck_parts_channel": _with_nursery(test_load.test_channel_barge_in_with_a_stuck_part, "all"),
    "blocked_write": _with_nursery(
        test_load.test_microphone_behind_a_write_that_never_ends_is_bounded
    ),
    "soak": _soak,
}


@pytest.mark.parametrize("part", OTHER_PARTS)
async def test_no_secret_in_the_other_parts(
    part: str, logs: Everything, autojump_clock: trio.testing.MockClock
) -> None:
    """The Twilio call's cancellation and faults, the stalled close, the fuzzed session and
    call, the stuck parts under real-time audio, and a small soak."""
    await OTHER_PARTS[part]()
    assert logs.lines, "DEBUG logging captured nothing"
    assert leaks(logs.lines) == []
