"""The rest of the session API: run() under nursery.start, audio, mute, history, tool outputs."""

from __future__ import annotations

import base64
from typing import Any, TypeVar

import attrs
import pytest
import trio
import trio.testing

from kernl_trio import RealtimeAgent, RealtimeSession, SessionEvent
from kernl_trio.core import ToolOutput, counter_ids
from kernl_trio.errors import CallAlreadyAnswered
from kernl_trio.protocol import (
    PCM16_24K,
    InputText,
    ItemCreate,
    ItemDelete,
    ItemTruncate,
    MessageItem,
    OutputAudio,
    OutputText,
    ResponseDone,
    ToolCall,
    TransportStatus,
)
from kernl_trio.providers.openai import OpenAIRealtimeModel
from kernl_trio.session import Subscription, history_changes
from kernl_trio.testing import Reply, ToolCallReply, VirtualChannel

from .helpers import library_tasks, start_server

T = TypeVar("T")
AGENT = RealtimeAgent(id="a", name="A", instructions="x")


async def test_run_under_nursery_start_and_close(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, [])
    before = library_tasks()
    session = RealtimeSession(AGENT, model=OpenAIRealtimeModel(base_url=server.url))
    async with trio.open_nursery() as inner:
        started = await inner.start(session.run)
        assert started is session
        assert session.status is TransportStatus.CONNECTED
        assert session.id is not None
        session.close()
    final: TransportStatus = session.status
    assert final is TransportStatus.DISCONNECTED
    assert library_tasks() == before


async def test_audio_commit_and_mute(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, [])
    channel = VirtualChannel()
    async with open_session_with(server.url, channel) as session:
        await session.send_audio(b"\x01\x00" * 480, commit=True)
        session.mute()
        assert session.muted is True
        await session.send_audio(b"\x02\x00" * 480)
        await channel.say(b"\x03\x00" * 480, paced=False)
        await trio.sleep(0.01)  # let the channel pump forward it while muted
        session.unmute()
        await channel.say(b"\x04\x00" * 960)  # two 20 ms chunks, paced
        await channel.commit()
        await trio.sleep(0.1)
    conn = server.connections[0]
    appends = [base64.b64decode(e["audio"]) for e in conn.of_type("input_audio_buffer.append")]
    assert appends == [b"\x01\x00" * 480, b"\x04\x00" * 480, b"\x04\x00" * 480]
    assert len(conn.of_type("input_audio_buffer.commit")) == 2


def open_session_with(url: str, channel: VirtualChannel, **options: Any):  # type: ignore[no-untyped-def]
    from kernl_trio import open_session

    return open_session(AGENT, model=OpenAIRealtimeModel(base_url=url), channel=channel, **options)


async def test_send_tool_output_for_an_unhandled_call(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, [Reply.of(ToolCallReply("external", call_id="call_x"))])
    # the agent does not define "external": with answer_unknown_tools=False the application
    # answers it, and that is the call's one output
    options = {"answer_unknown_tools": False}
    async with open_session_with(server.url, VirtualChannel(), **options) as session:
        async with session.events() as stream:
            await session.send_message("hi")
            call = await _next_of(stream, ToolCall)
            await session.send_tool_output(call, '{"ok": true}', start_response=False)
            await _next_of(stream, ResponseDone)
            with pytest.raises(CallAlreadyAnswered):
                await session.send_tool_output(call, '{"again": true}')
    outputs = [e["item"] for e in server.connections[0].of_type("conversation.item.create")[1:]]
    assert outputs == [
        {"type": "function_call_output", "call_id": "call_x", "output": '{"ok": true}'}
    ]
    assert not server.connections[0].of_type("response.create")[1:]


async def test_send_tool_output_never_adds_a_second_output(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, [Reply.of(ToolCallReply("external", call_id="call_x"))])
    async with open_session_with(server.url, VirtualChannel()) as session:
        async with session.events() as stream:
            await session.send_message("hi")
            call = await _next_of(stream, ToolCall)
            await _next_of(stream, ToolOutput)  # the session answered: unknown tool
            with pytest.raises(CallAlreadyAnswered):
                await session.send_tool_output(call, '{"ok": true}')
            await trio.sleep(1)
    conn = server.connections[0]
    outputs = [e["item"] for e in conn.of_type("conversation.item.create")[1:]]
    assert [o["call_id"] for o in outputs] == ["call_x"]
    assert "unknown tool" in outputs[0]["output"]
    assert len(conn.of_type("response.create")) == 2  # the message's and the one follow-up


async def _next_of(stream: Subscription[SessionEvent], kind: type[T]) -> T:
    async for event in stream:
        if isinstance(event, kind):
            return event
    raise AssertionError(f"no {kind.__name__}")


def test_history_changes_delete_truncate_create() -> None:
    hello = MessageItem(role="user", content=(InputText("hello"),), id="u1")
    spoken = MessageItem(
        role="assistant", content=(OutputAudio("hi there", audio=b"\x00" * 4800),), id="a1"
    )
    heard = MessageItem(
        role="assistant", content=(OutputAudio("hi there", audio=b"\x00" * 960),), id="a1"
    )
    old_q = MessageItem(role="user", content=(InputText("old"),), id="u2")
    new_q = MessageItem(role="user", content=(InputText("new"),))
    events = history_changes(
        [hello, spoken, old_q], [hello, heard, new_q], PCM16_24K, new_id=counter_ids()
    )
    assert events == [
        ItemDelete("u2"),
        ItemTruncate("a1", 20),  # 960 bytes of 24 kHz PCM16
        ItemCreate(attrs.evolve(new_q, id="item_1"), previous_item_id="a1"),
    ]


def test_history_changes_keep_the_order_of_several_new_items() -> None:
    kept = MessageItem(role="user", content=(InputText("kept"),), id="u1")
    first, second, third = (
        MessageItem(role="user", content=(InputText(text),)) for text in ("1", "2", "3")
    )
    tail = MessageItem(role="user", content=(InputText("tail"),), id="u9")
    events = history_changes(
        [kept], [first, kept, second, third, tail], PCM16_24K, new_id=counter_ids()
    )
    placed = [(e.item.id, e.previous_item_id) for e in events if isinstance(e, ItemCreate)]
    assert placed == [
        ("item_1", "root"),
        ("item_2", "u1"),
        ("item_3", "item_2"),  # behind the new item before it, not at the start
        ("u9", "item_3"),
    ]


def test_history_truncates_the_audio_part_that_was_cut() -> None:
    said = OutputAudio("a", audio=b"\x00" * 4800)
    before = MessageItem(role="assistant", content=(OutputText("intro"), said), id="a1")
    after = attrs.evolve(before, content=(OutputText("intro"), OutputAudio("a", b"\x00" * 480)))
    assert history_changes([before], [after], PCM16_24K) == [
        ItemTruncate("a1", 10, content_index=1)
    ]


def test_history_changes_replaces_changed_items_in_place() -> None:
    first = MessageItem(role="user", content=(InputText("a"),), id="u1")
    edited = MessageItem(role="user", content=(InputText("b"),), id="u1")
    assert history_changes([first], [edited], PCM16_24K) == [
        ItemDelete("u1"),
        ItemCreate(edited, previous_item_id="root"),
    ]
