"""The connection and transport contracts through their public API, against real sockets."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio.testing

from kernl_trio import RealtimeAgent, open_session
from kernl_trio.model import ConnectOptions, RealtimeConnection, RealtimeModel
from kernl_trio.protocol import (
    AudioInputAppend,
    InputText,
    MessageItem,
    ResponseDone,
    SessionCreated,
    SpeechStarted,
    TransportStatus,
)
from kernl_trio.providers.openai import OpenAIRealtimeModel
from kernl_trio.testing import AudioReply, Reply, VirtualChannel

from .helpers import start_server

AGENT = RealtimeAgent(id="a", name="A", instructions="x")


async def test_connection_status_identity_mute_raw_and_interrupt(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, [])
    model = OpenAIRealtimeModel("gpt-realtime", base_url=server.url)
    async with model.connect() as conn:
        assert isinstance(conn, RealtimeConnection)
        assert conn.status is TransportStatus.CONNECTED
        assert conn.provider_metadata == {
            "provider": "openai",
            "model": "gpt-realtime",
            "url": model.url,
        }
        [created] = await conn.receive_batch()
        assert isinstance(created, SessionCreated)
        assert conn.session_id == created.session.id
        conn.mute()
        assert conn.muted
        await conn.send(AudioInputAppend(b"\x01\x00" * 10))  # dropped while muted
        conn.unmute()
        await conn.send(AudioInputAppend(b"\x02\x00" * 10))
        await conn.send_raw({"type": "input_audio_buffer.clear"})
        await conn.interrupt()
        wire = await server.connection()
        await wire.expect("response.cancel")
    closed: TransportStatus = conn.status
    assert closed is TransportStatus.CLOSED
    appends = [base64.b64decode(e["audio"]) for e in wire.of_type("input_audio_buffer.append")]
    assert appends == [b"\x02\x00" * 10]
    assert wire.of_type("input_audio_buffer.clear")
    assert wire.received[-1] == {"type": "response.cancel"}


async def test_a_batch_decodes_each_frame_when_reached_and_keeps_what_is_left(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, [])
    model = OpenAIRealtimeModel("gpt-realtime", base_url=server.url)
    async with model.connect() as conn:
        wire = await server.connection()
        await wire.speech_started(5)
        again = {"type": "session.created", "session": {"id": "sess_later", "type": "realtime"}}
        await wire.send(again)
        await trio.sleep(1)  # all three frames arrive before the first read
        batch = iter(await conn.receive_batch())
        assert isinstance(next(batch), SessionCreated)
        first_id = conn.session_id
        assert isinstance(next(batch), SpeechStarted)
        assert conn.session_id == first_id  # the third frame is not decoded yet
        # The caller leaves it: the next call hands it over first, without a read.
        with trio.fail_after(0.001):
            [later] = await conn.receive_batch()
        assert isinstance(later, SessionCreated)
        assert conn.session_id == "sess_later"


async def test_reset_history_reaches_the_server_in_order(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, [])
    model = OpenAIRealtimeModel(base_url=server.url)
    old = [MessageItem("user", (InputText("old"),), id="u1")]
    new = [MessageItem("user", (InputText(text),)) for text in ("one", "two")]
    async with open_session(AGENT, model=model) as session:
        for item in old:
            await session.send_message(item, respond=False)
        await session.reset_history(old, new)
        await trio.sleep(0.1)
    wire = server.connections[0]
    creates = wire.of_type("conversation.item.create")[1:]
    assert [c["item"]["content"][0]["text"] for c in creates] == ["one", "two"]
    assert creates[0]["previous_item_id"] == "root"
    assert creates[1]["previous_item_id"] == creates[0]["item"]["id"]
    assert wire.of_type("conversation.item.delete")[0]["item_id"] == "u1"


class ExternalAudioTransport:
    """A transport whose audio flows outside the session (as a SIP call's does)."""

    handles_audio = True

    @asynccontextmanager
    async def connect(
        self, model: RealtimeModel, options: ConnectOptions | None = None
    ) -> AsyncIterator[Any]:
        async with model.connect(options) as conn:
            yield conn


async def test_a_transport_that_handles_audio_gets_no_playback_and_no_truncate(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, [Reply.of(AudioReply("Hello.", ms=1000))])
    channel = VirtualChannel()
    model = OpenAIRealtimeModel(base_url=server.url)
    async with open_session(
        AGENT, model=model, channel=channel, transport=ExternalAudioTransport()
    ) as session:
        async with session.events() as events:
            await session.send_message("hi")
            async for event in events:
                if isinstance(event, ResponseDone):
                    break
            await session.interrupt()
        update = server.connections[0].of_type("session.update")[0]["session"]
    assert channel.played_audio == b""
    assert not server.connections[0].of_type("conversation.item.truncate")
    assert "format" not in update.get("audio", {}).get("output", {})  # the channel's not used
