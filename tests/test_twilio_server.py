"""serve_twilio end to end: simulated Twilio peers -> the bridge -> the scripted model server.

Real WebSockets on 127.0.0.1 both ways; trio's autojump clock paces the peers' media, their
playback and the model's streaming, so every position below is exact in virtual time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing
import trio_websocket

from kernl_trio.agent import RealtimeAgent
from kernl_trio.channels.twilio import (
    StartInfo,
    TwilioCall,
    TwilioDtmf,
    TwilioMalformed,
    TwilioOptions,
    TwilioServer,
    serve_twilio,
    twilio_signature,
    validate_twilio_signature,
)
from kernl_trio.cli import main as cli_main
from kernl_trio.cli.twilio import load_agent, run_twilio_command
from kernl_trio.context import Context
from kernl_trio.errors import ConfigurationError
from kernl_trio.protocol import PCM16_24K, PCMU_8K, AudioFormat, ResponseInterrupted
from kernl_trio.providers.openai import OpenAIRealtimeModel
from kernl_trio.testing import AudioReply, Reply, ScriptedServer, ToolCallReply
from kernl_trio.testing.server import ServerConnection
from kernl_trio.testing.twilio_peer import TwilioPeer
from kernl_trio.tools import tool

from .phone_agent import AGENT

RESPONSE_CREATE: dict[str, Any] = {"type": "response.create"}


async def start_model_server(nursery: trio.Nursery) -> ScriptedServer:
    server: ScriptedServer = await nursery.start(ScriptedServer().run)
    return server


async def start_bridge(
    nursery: trio.Nursery,
    model_server: ScriptedServer,
    agent: RealtimeAgent = AGENT,
    **kwargs: Any,
) -> TwilioServer:
    model = OpenAIRealtimeModel(base_url=model_server.url)
    bridge: TwilioServer = await nursery.start(partial(serve_twilio, agent, model=model, **kwargs))
    return bridge


async def dial(
    nursery: trio.Nursery, bridge: TwilioServer, path: str = "/twilio", **kwargs: Any
) -> TwilioPeer:
    peer: TwilioPeer = await nursery.start(
        TwilioPeer(f"ws://127.0.0.1:{bridge.port}{path}", **kwargs).run
    )
    return peer


async def model_side(model_server: ScriptedServer, index: int = 0) -> ServerConnection:
    """The model server's end of a call, once the session has configured it."""
    conn = await model_server.connection(index)
    await conn.expect("session.update")
    return conn


async def live_call(bridge: TwilioServer, peer: TwilioPeer) -> TwilioCall:
    """The bridge's side of ``peer``'s call, once its session is open."""
    await wait_until(
        lambda: (
            peer.stream_sid in bridge.calls and bridge.calls[peer.stream_sid].session is not None
        )
    )
    return bridge.calls[peer.stream_sid]


async def wait_until(predicate: Callable[[], bool], step: float = 0.01) -> None:
    """Poll state that other objects own, in virtual time (costs no wall time)."""
    while not predicate():  # noqa: ASYNC110
        await trio.sleep(step)


# -- (a) barge-in ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("model_format", "realtime"),
    [(PCMU_8K, True), (PCMU_8K, False), (PCM16_24K, True), (PCM16_24K, False)],
    ids=["ulaw-streamed", "ulaw-burst", "pcm16-streamed", "pcm16-burst"],
)
async def test_barge_in_clears_twilio_and_truncates_at_the_acknowledged_mark(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    model_format: AudioFormat,
    realtime: bool,
) -> None:
    model_server = await start_model_server(nursery)
    bridge = await start_bridge(
        nursery, model_server, options=TwilioOptions(model_format=model_format)
    )
    peer = await dial(nursery, bridge)
    conn = await model_side(model_server)
    call = await live_call(bridge, peer)
    assert call.session is not None
    async with call.session.events() as session_events:
        conn.start_response(
            RESPONSE_CREATE, Reply.of(AudioReply("Hello!", ms=3000), realtime=realtime)
        )
        start = trio.current_time()
        await trio.sleep(1.013)  # between two marks (they come every 20 ms of playback)
        spoke_at = trio.current_time()
        await conn.speech_started()
        await peer.wait_received("clear")
        truncate = await conn.expect("conversation.item.truncate")
        interrupted = await session_events_next(session_events, ResponseInterrupted)

    # Twilio was cleared at the instant the model heard the caller speak
    assert peer.clears == [spoke_at]
    # the truncate carries exactly the position of the last mark Twilio echoed as played
    heard = peer.acknowledged(before=spoke_at)
    assert heard, "the peer acknowledged no mark before the barge-in"
    assert truncate["item_id"] == heard[-1].item_id
    assert truncate["audio_end_ms"] == math.floor(heard[-1].ms)
    assert interrupted.played_ms == truncate["audio_end_ms"]
    # ... which is what the caller heard: one mark per 20 ms frame of playback
    assert spoke_at - start - 0.040 <= heard[-1].ms / 1000 <= spoke_at - start
    # audio still queued at Twilio was flushed; the echoes of its marks move nothing
    await trio.sleep(0.5)
    assert any(mark.cleared for mark in peer.marks)
    assert call.channel.played_ms(heard[-1].item_id) == heard[-1].ms
    assert call.channel.statistics().marks_cleared == sum(m.cleared for m in peer.marks)
    assert [e for e in conn.sent if e["type"] == "error"] == []  # the server took it all
    await peer.hang_up()


async def session_events_next(events: trio.abc.ReceiveChannel[Any], kind: type[Any]) -> Any:
    async for event in events:
        if isinstance(event, kind):
            return event
    raise AssertionError(f"no {kind.__name__}")


# -- (b) DTMF ------------------------------------------------------------------------------------
async def test_dtmf_reaches_subscribers_of_the_call(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    digits: list[TwilioDtmf] = []
    subscribed = trio.Event()

    async def on_call(call: TwilioCall) -> None:
        async with call.channel.events() as events:
            subscribed.set()
            async for event in events:
                if isinstance(event, TwilioDtmf):
                    digits.append(event)

    model_server = await start_model_server(nursery)
    bridge = await start_bridge(nursery, model_server, on_call=on_call)
    peer = await dial(nursery, bridge)
    await subscribed.wait()
    for digit in "42#":
        await peer.dtmf(digit)
    await wait_until(lambda: len(digits) == 3)
    assert [d.digit for d in digits] == ["4", "2", "#"]
    await peer.hang_up()


async def test_a_configured_dtmf_key_interrupts_the_assistant(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    model_server = await start_model_server(nursery)
    bridge = await start_bridge(nursery, model_server, options=TwilioOptions(interrupt_digits="*"))
    peer = await dial(nursery, bridge)
    conn = await model_side(model_server)
    conn.start_response(RESPONSE_CREATE, Reply.of(AudioReply("Hi", ms=2000), realtime=True))
    await trio.sleep(0.51)
    await peer.dtmf("*")
    await peer.wait_received("clear")
    truncate = await conn.expect("conversation.item.truncate")
    assert conn.of_type("response.cancel")  # a keypad barge-in: the client cancels
    assert truncate["audio_end_ms"] == peer.acknowledged(before=peer.clears[0])[-1].ms == 500
    await peer.hang_up()


# -- (c) malformed messages ------------------------------------------------------------------------
async def test_malformed_twilio_messages_are_reported_and_the_call_goes_on(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reports: list[TwilioMalformed] = []
    subscribed = trio.Event()

    async def on_call(call: TwilioCall) -> None:
        async with call.channel.events() as events:
            subscribed.set()
            async for event in events:
                if isinstance(event, TwilioMalformed):
                    reports.append(event)

    model_server = await start_model_server(nursery)
    bridge = await start_bridge(nursery, model_server, on_call=on_call)
    peer = await dial(nursery, bridge)
    conn = await model_side(model_server)
    await subscribed.wait()
    with caplog.at_level(logging.WARNING, logger="kernl_trio.channels.twilio"):
        await peer.send("this is not JSON")
        await peer.send({"event": "hologram", "hologram": {}})
        await peer.send({"event": "media", "media": {"track": "inbound"}})
        await peer.send({"event": "dtmf"})
        await peer.send(b"\x00\x01binary")
        await wait_until(lambda: len(reports) == 5)
    assert [r.reason.split(":")[0] for r in reports] == [
        "not JSON",
        "unknown event 'hologram'",
        "media",
        "dtmf",
        "binary frames are not part of the Twilio protocol",
    ]
    assert caplog.text.count("malformed message") == 5
    # the call goes on: the model still hears the caller and the caller still hears the model
    heard_before = conn.input_audio_total
    await trio.sleep(0.2)
    assert conn.input_audio_total >= heard_before + 8 * 180
    conn.start_response(RESPONSE_CREATE, Reply.of(AudioReply("Still here", ms=200)))
    await peer.wait_received("mark", count=10)
    await peer.hang_up()
    await wait_until(lambda: bridge.statistics().completed == 1)
    record = bridge.history[-1]
    assert (record.outcome, record.statistics.malformed) == ("completed", 5)


# -- (d) many calls ------------------------------------------------------------------------------
async def test_fifty_concurrent_calls_each_get_their_own_audio(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    calls = 50
    agent = RealtimeAgent("phone", name="Phone", instructions=lambda ctx: f"caller={ctx.data}")

    def context_factory(start: StartInfo) -> Context[int]:
        return Context(int(start.custom_parameters["caller"]))

    def voice(caller: int) -> bytes:  # 300 ms of u-law only this caller gets
        return bytes([caller, 0x80 + caller, caller]) * 800

    model_server = await start_model_server(nursery)
    bridge = await start_bridge(nursery, model_server, agent, context_factory=context_factory)
    peers = [
        await dial(nursery, bridge, custom_parameters={"caller": str(i)}) for i in range(calls)
    ]
    conns = [await model_side(model_server, i) for i in range(calls)]
    assert bridge.statistics().active == calls
    for conn in conns:
        caller = int(conn.session["instructions"].removeprefix("caller="))
        reply = Reply.of(AudioReply(f"hello {caller}", audio=voice(caller)), realtime=True)
        conn.start_response(RESPONSE_CREATE, reply)
    for peer in peers:
        await peer.wait_received("mark", count=15)  # 300 ms in 20 ms frames
    # played to the end (in virtual time: 50 microphones stream on while the clock runs)
    await wait_until(lambda: all(len(peer.played_audio) >= len(voice(0)) for peer in peers))
    for i, peer in enumerate(peers):
        assert bytes(peer.received_audio) == voice(i)
        assert bytes(peer.played_audio) == voice(i)
    async with trio.open_nursery() as hang_ups:
        for peer in peers:
            hang_ups.start_soon(peer.hang_up)
    await wait_until(lambda: bridge.statistics().completed == calls)
    for i, peer in enumerate(peers):  # and nothing else arrived until the end of the call
        assert bytes(peer.received_audio) == voice(i)
    assert bridge.statistics().failed == 0


async def test_one_call_failing_does_not_disturb_another(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def context_factory(start: StartInfo) -> Context[str]:
        if start.custom_parameters.get("caller") == "bad":
            raise RuntimeError("no such customer")
        return Context(start.custom_parameters["caller"])

    model_server = await start_model_server(nursery)
    bridge = await start_bridge(nursery, model_server, context_factory=context_factory)
    good = await dial(nursery, bridge, custom_parameters={"caller": "good"})
    conn = await model_side(model_server)
    bad = await dial(nursery, bridge, custom_parameters={"caller": "bad"})
    await bad.closed.wait()  # the bridge hung up on the failed call
    conn.start_response(RESPONSE_CREATE, Reply.of(AudioReply("fine", ms=200), realtime=True))
    await good.wait_received("mark", count=10)
    stats = bridge.statistics()
    assert (stats.active, stats.failed) == (1, 1)
    failed = bridge.history[-1]
    assert failed.outcome == "failed" and isinstance(failed.error, RuntimeError)
    assert failed.call_sid == bad.call_sid
    assert "no such customer" in caplog.text
    await good.hang_up()
    await wait_until(lambda: bridge.statistics().completed == 1)


# -- (e) signatures ------------------------------------------------------------------------------
TOKEN = "0123456789abcdef0123456789abcdef"
PUBLIC = "wss://voice.example.com"


def sign(url: str, token: str = TOKEN) -> str:
    """Twilio's scheme, written out independently of the library."""
    return base64.b64encode(hmac.new(token.encode(), url.encode(), hashlib.sha1).digest()).decode()


@pytest.mark.parametrize(
    "headers",
    [(), (("X-Twilio-Signature", sign(PUBLIC + "/twilio?tenant=7", "wrong-token")),)],
    ids=["missing", "bad"],
)
async def test_a_missing_or_bad_signature_is_refused(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    headers: tuple[tuple[str, str], ...],
) -> None:
    model_server = await start_model_server(nursery)
    bridge = await start_bridge(nursery, model_server, auth_token=TOKEN, public_url=PUBLIC)
    peer = TwilioPeer(f"ws://127.0.0.1:{bridge.port}/twilio?tenant=7", headers=headers)
    with pytest.raises(trio_websocket.ConnectionRejected) as refused:
        await peer.run()
    assert refused.value.status_code == 403
    assert bridge.statistics().refused == 1
    assert bridge.statistics().started == 0
    assert model_server.connections == []


async def test_a_good_signature_is_accepted(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    model_server = await start_model_server(nursery)
    bridge = await start_bridge(nursery, model_server, auth_token=TOKEN, public_url=PUBLIC + "/")
    signature = sign(PUBLIC + "/twilio?tenant=7")
    peer = await dial(
        nursery, bridge, "/twilio?tenant=7", headers=[("X-Twilio-Signature", signature)]
    )
    await model_side(model_server)
    assert bridge.statistics().refused == 0
    await peer.hang_up()


def test_signature_matches_twilio_documented_example() -> None:
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature("12345", url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert validate_twilio_signature("12345", url, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", params)


def test_signature_validation_tolerates_the_default_port_only() -> None:
    signed = sign("wss://voice.example.com/twilio")
    assert validate_twilio_signature(TOKEN, "wss://voice.example.com:443/twilio", signed)
    assert validate_twilio_signature(TOKEN, "wss://voice.example.com/twilio", signed.encode())
    assert not validate_twilio_signature(TOKEN, "wss://voice.example.com:8443/twilio", signed)
    assert not validate_twilio_signature(TOKEN, "wss://voice.example.com/twilio", None)
    assert not validate_twilio_signature(TOKEN, "wss://voice.example.com/twilio", "é")
    assert not validate_twilio_signature(TOKEN, "wss://voice.example.com/other", signed)


# -- (f) u-law pass-through ------------------------------------------------------------------------
async def test_ulaw_passes_through_byte_for_byte_both_ways(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    model_server = await start_model_server(nursery)
    bridge = await start_bridge(nursery, model_server)
    peer = await dial(nursery, bridge)
    conn = await model_side(model_server)
    assert conn.session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert conn.session["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    # caller -> model: every byte Twilio sent, in order (after the session was configured)
    spoken = bytes(range(256)) * 5  # 160 ms, every u-law code
    await peer.say(spoken)
    await trio.sleep(0.1)
    assert spoken in bytes(conn.input_audio)
    assert bytes(conn.input_audio) in bytes(peer.sent_audio)
    # model -> caller: exactly the model's bytes, in 20 ms frames each followed by a mark
    voice = bytes(reversed(range(256))) * 7 + b"\x42" * 3  # 1795 bytes: not a whole frame
    conn.start_response(RESPONSE_CREATE, Reply.of(AudioReply("codes", audio=voice)))
    await peer.wait_received("mark", count=12)
    assert bytes(peer.received_audio) == voice
    events = [m["event"] for m in peer.received]
    assert events == ["media", "mark"] * 12
    assert peer.received[-1]["mark"]["name"].endswith(":224.375")  # 1795 / 8 ms
    await peer.hang_up()


# -- (g) hanging up -------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["stop", "socket-close"])
async def test_hanging_up_ends_the_session_and_cancels_a_running_tool(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, how: str
) -> None:
    started = trio.Event()
    finally_ran = trio.Event()

    @tool
    async def look_up_order(order: str) -> str:
        """Find an order (slowly)."""
        started.set()
        try:
            await trio.sleep_forever()
        finally:
            finally_ran.set()
        return "never"  # pragma: no cover

    agent = RealtimeAgent("phone", name="Phone", instructions="Help.", tools=[look_up_order])
    model_server = await start_model_server(nursery)
    bridge = await start_bridge(nursery, model_server, agent)
    peer = await dial(nursery, bridge)
    conn = await model_side(model_server)
    conn.start_response(
        RESPONSE_CREATE, Reply.of(ToolCallReply("look_up_order", '{"order": "A-1"}'))
    )
    await started.wait()
    hang_up: Callable[[], Awaitable[None]] = peer.hang_up if how == "stop" else peer.disconnect
    await hang_up()
    with trio.fail_after(5):
        await finally_ran.wait()
        await conn.closed.wait()  # the model connection closed with the call
        await wait_until(lambda: bridge.statistics().completed == 1)
    assert bridge.calls == {}
    assert bridge.history[-1].outcome == "completed"


async def test_losing_the_model_ends_only_that_call_and_hangs_up_its_stream(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    model_server = await start_model_server(nursery)
    bridge = await start_bridge(nursery, model_server)
    doomed = await dial(nursery, bridge)
    doomed_conn = await model_side(model_server, 0)
    other = await dial(nursery, bridge)
    other_conn = await model_side(model_server, 1)
    await doomed_conn.drop()
    with trio.fail_after(5):
        await doomed.closed.wait()  # Twilio's socket closed: the stream ends
    await wait_until(lambda: bool(bridge.history))
    assert bridge.history[-1].outcome == "failed"
    other_conn.start_response(RESPONSE_CREATE, Reply.of(AudioReply("ok", ms=100)))
    await other.wait_received("mark", count=5)
    assert bridge.statistics().active == 1
    await other.hang_up()


async def test_a_stream_without_start_is_dropped_after_the_start_timeout(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    model_server = await start_model_server(nursery)
    bridge = await start_bridge(nursery, model_server, start_timeout=3)
    peer = await dial(nursery, bridge, send_start=False)  # says "connected", then nothing
    with trio.fail_after(10):
        await peer.closed.wait()
    assert trio.current_time() == pytest.approx(3, abs=0.01)
    await wait_until(lambda: bool(bridge.history))
    assert bridge.history[-1].outcome == "failed"
    assert isinstance(bridge.history[-1].error, trio.TooSlowError)
    assert model_server.connections == []


# -- the command line ------------------------------------------------------------------------------
def make_agent() -> RealtimeAgent:
    return AGENT


def test_load_agent_takes_an_agent_or_a_factory() -> None:
    assert load_agent("tests.test_twilio_server:AGENT") is AGENT
    assert load_agent("tests.test_twilio_server:make_agent") is AGENT
    for bad in (
        "tests.test_twilio_server",
        "no_such_module_xyz:agent",
        "tests.test_twilio_server:nope",
    ):
        with pytest.raises(ConfigurationError):
            load_agent(bad)
    with pytest.raises(ConfigurationError, match="not a RealtimeAgent"):
        load_agent("tests.test_twilio_server:RESPONSE_CREATE")


def test_main_twilio_reports_a_bad_agent_reference(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["twilio", "--agent", "no_such_module_xyz:agent", "--port", "0"]) == 2
    assert "cannot import" in capsys.readouterr().err


async def test_run_twilio_command_serves_the_agent(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model_server = await start_model_server(nursery)
    nursery.start_soon(
        partial(
            run_twilio_command,
            "tests.test_twilio_server:AGENT",
            port=0,
            model_url=model_server.url,
        )
    )
    await wait_until(lambda: "ws://127.0.0.1:" in capsys.readouterr().out)
