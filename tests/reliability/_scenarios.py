"""The scripted conversations the reliability suite attacks, and the harness around them.

Each scenario opens a real session (sans-I/O WebSocket on 127.0.0.1, a
:class:`ScriptedServer`, a :class:`VirtualChannel`) and walks one conversation to its end,
then waits in the block (``linger``) so that a fault injected late still lands inside it.
Tools record their start and their ``finally`` so a test can check every call was wound up.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from kernl_trio import RealtimeAgent, open_session, tool
from kernl_trio.protocol import (
    AudioOutputDelta,
    ResponseDone,
    ResponseInterrupted,
    ToolCall,
    ToolCancelled,
)
from kernl_trio.providers.openai import OpenAIRealtimeModel
from kernl_trio.session import RealtimeSession, SessionEvent
from kernl_trio.testing import (
    AudioReply,
    Reply,
    ScriptedServer,
    TextReply,
    ToolCallReply,
    TwilioPeer,
    VirtualChannel,
)
from kernl_trio.tools import Tool

THOROUGH = os.environ.get("KERNL_RELIABILITY", "quick") == "thorough"
"""``KERNL_RELIABILITY=thorough`` runs every schedule and frame count the issue asks for."""

FAKE_API_KEY = "sk-test-SECRET-kernl-0123456789abcdef"
"""Recognisable in any log line, repr or exception text it leaks into."""

FAKE_TWILIO_TOKEN = "twilio-SECRET-auth-token-fedcba9876543210"
"""The Twilio auth token every bridge of the suite checks signatures with."""

TWILIO_PUBLIC_URL = "wss://voice.example.com"
TWILIO_OPTIONS: dict[str, Any] = {"auth_token": FAKE_TWILIO_TOKEN, "public_url": TWILIO_PUBLIC_URL}
"""``serve_twilio`` keyword arguments: the bridge checks each caller's signature."""


def twilio_signature(url: str, token: str = FAKE_TWILIO_TOKEN) -> str:
    digest = hmac.new(token.encode(), url.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def twilio_peer(port: int) -> TwilioPeer:
    """A simulated Twilio caller that signs its request with the suite's token."""
    signature = twilio_signature(TWILIO_PUBLIC_URL + "/twilio")
    return TwilioPeer(f"ws://127.0.0.1:{port}/twilio", headers=[("X-Twilio-Signature", signature)])


def sample(total: int, quick: int) -> list[int]:
    """1..total in the thorough profile; about ``quick`` evenly spread points otherwise."""
    if THOROUGH or total <= quick:
        return list(range(1, total + 1))
    step = total / quick
    points = sorted({max(1, min(total, round(1 + k * step))) for k in range(quick)} | {total})
    return points


@attrs.define
class ToolLog:
    started: list[str] = attrs.field(factory=list)
    finished: list[str] = attrs.field(factory=list)  # the finally clause ran

    def tools(self) -> list[Tool]:
        log = self

        @tool
        async def slow() -> str:
            """Takes a minute."""
            log.started.append("slow")
            try:
                await trio.sleep(60)
            finally:
                log.finished.append("slow")
            return "late"

        @tool
        async def add(a: int, b: int) -> int:
            """Adds two numbers."""
            log.started.append("add")
            try:
                await trio.sleep(0.05)
            finally:
                log.finished.append("add")
            return a + b

        @tool(cancel_on_interrupt=False)
        async def pay(amount: int) -> str:
            """Takes a payment; must not be cut short."""
            log.started.append("pay")
            try:
                await trio.sleep(2)
            finally:
                log.finished.append("pay")
            return "paid"

        return [slow, add, pay]

    @property
    def all_wound_up(self) -> bool:
        return sorted(self.started) == sorted(self.finished)


async def until(stream: Any, kind: type[Any] | tuple[type[Any], ...]) -> SessionEvent:
    async for event in stream:
        if isinstance(event, kind):
            return event  # type: ignore[no-any-return]
    raise AssertionError(f"the stream ended before {kind}")


Drive = Callable[[RealtimeSession, ScriptedServer, VirtualChannel], Awaitable[None]]


@attrs.frozen
class Scenario:
    name: str
    replies: tuple[Reply, ...]
    drive: Drive
    session: dict[str, Any] | None = None


async def _text_turn(session: RealtimeSession, server: ScriptedServer, _: VirtualChannel) -> None:
    async with session.events() as stream:
        await session.send_message("What is two plus two?")
        await until(stream, ResponseDone)


async def _audio_turn(session: RealtimeSession, server: ScriptedServer, _: VirtualChannel) -> None:
    async with session.events() as stream:
        await session.send_message("Say four.")
        await until(stream, ResponseDone)
        await trio.sleep(0.6)  # played to the end


async def _barge_in(session: RealtimeSession, server: ScriptedServer, _: VirtualChannel) -> None:
    async with session.events() as stream:
        await session.send_message("Tell me a story.")
        await until(stream, AudioOutputDelta)
        await trio.sleep(0.3)
        await (await server.connection()).speech_started()
        await until(stream, ResponseInterrupted)


async def _tool_call(session: RealtimeSession, server: ScriptedServer, _: VirtualChannel) -> None:
    async with session.events() as stream:
        await session.send_message("Add two and three.")
        await until(stream, ResponseDone)
        await until(stream, ResponseDone)  # the follow-up after the tool's output


async def _tool_cancelled(
    session: RealtimeSession, server: ScriptedServer, channel: VirtualChannel
) -> None:
    async with session.events() as stream:
        await session.send_message("Do the slow thing.")
        await until(stream, ToolCall)
        await trio.sleep(0.1)
        await channel.barge_in()
        await until(stream, ToolCancelled)


async def _protected_tool_at_close(
    session: RealtimeSession, server: ScriptedServer, channel: VirtualChannel
) -> None:
    async with session.events() as stream:
        await session.send_message("Pay ten.")
        await until(stream, ToolCall)
        await channel.barge_in()  # spares the payment
        await until(stream, ResponseInterrupted)
    # leaving the block now: closing waits for the payment (CLOSE_GRACE)


async def _microphone_turn(
    session: RealtimeSession, server: ScriptedServer, channel: VirtualChannel
) -> None:
    async with session.events() as stream:
        await channel.say(b"\x01\x00" * 24 * 300)  # 300 ms from the microphone, in real time
        await channel.commit()
        conn = await server.connection()
        await conn.expect("input_audio_buffer.commit")
        await session.create_response()
        await until(stream, ResponseDone)


SCENARIOS = (
    Scenario("text_turn", (Reply.of(TextReply("Four.")),), _text_turn),
    Scenario("audio_turn", (Reply.of(AudioReply("Four.", ms=400)),), _audio_turn),
    Scenario(
        "barge_in", (Reply.of(AudioReply("Once upon a time", ms=1000), realtime=True),), _barge_in
    ),
    Scenario(
        "tool_call",
        (
            Reply.of(ToolCallReply("add", '{"a": 2, "b": 3}')),
            Reply.of(AudioReply("Five.", ms=200)),
        ),
        _tool_call,
    ),
    Scenario(
        "tool_cancelled_by_barge_in",
        (Reply.of(ToolCallReply("slow"), AudioReply("Working on it", ms=600), realtime=True),),
        _tool_cancelled,
    ),
    Scenario("microphone_turn", (Reply.of(AudioReply("Heard you.", ms=300)),), _microphone_turn),
    Scenario(
        "protected_tool_at_close",
        (Reply.of(ToolCallReply("pay", '{"amount": 10}'), AudioReply("Paying", ms=600)),),
        _protected_tool_at_close,
    ),
)


@attrs.define
class Run:
    """What one run of a scenario left behind."""

    server: ScriptedServer
    channel: VirtualChannel
    tools: ToolLog
    session: RealtimeSession | None = None


async def run_scenario(
    scenario: Scenario,
    server: ScriptedServer,
    run: Run,
    *,
    linger: float = 0.0,
    api_key: str = FAKE_API_KEY,
    url: str | None = None,
    on_open: Callable[[RealtimeSession], None] | None = None,
    form: str = "open_session",
) -> None:
    """One conversation, start to end, then ``linger`` seconds inside the block.

    ``form="nursery_start"`` runs the session the second way: ``await nursery.start(
    session.run)`` in the caller's nursery, then ``session.close()``.
    """
    agent = RealtimeAgent(id="r", name="R", instructions="Be brief.", tools=run.tools.tools())
    model = OpenAIRealtimeModel(api_key=api_key, base_url=url or server.url)
    if form == "nursery_start":
        session = RealtimeSession(agent, model=model, channel=run.channel)
        run.session = session
        async with trio.open_nursery() as nursery:
            await nursery.start(session.run)
            await scenario.drive(session, server, run.channel)
            if linger:
                await trio.sleep(linger)
            session.close()
        return
    async with open_session(agent, model=model, channel=run.channel) as session:
        run.session = session
        if on_open is not None:
            on_open(session)
        await scenario.drive(session, server, run.channel)
        if linger:
            await trio.sleep(linger)


async def start(nursery: trio.Nursery, scenario: Scenario, server_class: Any = None) -> Run:
    cls = server_class or ScriptedServer
    server = await nursery.start(cls(scenario.replies, session=scenario.session).run)
    return Run(server, VirtualChannel(), ToolLog())


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))
