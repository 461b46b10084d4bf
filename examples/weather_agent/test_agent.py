"""Tests of the weather agent, against a realtime server in virtual time.

The fixtures come from kernl_trio's pytest plugin (``realtime_server``, ``realtime_model``,
``virtual_channel``, ``start_realtime_server``, ``realtime_replies``); ``autojump_clock`` from
pytest-trio makes every second of audio and every sleep virtual, so the whole file runs in a
fraction of a second and every position is exact.
"""

from __future__ import annotations

from typing import TypeVar

import orjson
import pytest
import trio
import trio.testing

from kernl_trio.context import Context
from kernl_trio.protocol import (
    ResponseInterrupted,
    SessionConfig,
    ToolCall,
    TranscriptInput,
    Transcription,
)
from kernl_trio.providers.openai import OpenAIRealtimeModel
from kernl_trio.session import SessionEvent, ToolOutput, open_session
from kernl_trio.testing import AudioReply, Reply, ToolCallReply, VirtualChannel
from kernl_trio.testing.embedded import EmbeddedServer
from kernl_trio.testing.pytest_plugin import RealtimeServerFactory
from kernl_trio.testing.rules import Rule, RuleScript, synthesize_speech

from .agent import WeatherService, weather_agent

pytestmark = pytest.mark.trio

E = TypeVar("E")


async def next_of(events: trio.MemoryReceiveChannel[SessionEvent], kind: type[E]) -> E:
    """The next event of ``kind`` on a subscription (``session.events()``)."""
    async for event in events:
        if isinstance(event, kind):
            return event
    raise AssertionError(f"the session closed before a {kind.__name__}")


@pytest.fixture
def realtime_replies() -> list[Reply]:
    """The model's side: "let me check" (3 s of audio) and a tool call; then the answer."""
    return [
        Reply.of(
            AudioReply("Let me check the weather in Paris for you, one moment.", ms=3000),
            ToolCallReply("get_weather", '{"city": "Paris"}'),
        ),
        Reply.of(AudioReply("It is 18 degrees and cloudy in Paris.", ms=2500)),
    ]


async def test_the_answer_uses_the_lookup(
    realtime_server: EmbeddedServer,
    realtime_model: OpenAIRealtimeModel,
    virtual_channel: VirtualChannel,
    autojump_clock: trio.testing.MockClock,
) -> None:
    service = WeatherService(latency=2.0)
    async with (
        open_session(
            weather_agent, model=realtime_model, channel=virtual_channel, context=Context(service)
        ) as session,
        session.events() as events,
    ):
        start = trio.current_time()
        await session.send_message("What's the weather in Paris?")
        output = await next_of(events, ToolOutput)
        assert trio.current_time() - start == 2.0  # the lookup took its 2 s
        assert orjson.loads(output.output) == {
            "city": "Paris",
            "temp_c": 18,
            "conditions": "cloudy",
        }
        await trio.sleep(10)  # let both answers play out

    connection = await realtime_server.connection()
    sent = connection.of_type("conversation.item.create")[-1]["item"]
    assert sent["type"] == "function_call_output" and sent["output"] == output.output
    assert service.lookups == ["Paris"] and service.cancelled == []
    # Everything was heard: 3 s of "let me check", then 2.5 s of the answer.
    assert virtual_channel.played_ms(connection.conversation[1]["id"]) == 3000
    assert len(virtual_channel.played_audio) == 5500 * 48  # 48 bytes per ms of 24 kHz PCM16


async def test_barge_in_during_the_answer_cancels_the_lookup_and_truncates_at_1_5_s(
    realtime_server: EmbeddedServer,
    realtime_model: OpenAIRealtimeModel,
    virtual_channel: VirtualChannel,
    autojump_clock: trio.testing.MockClock,
) -> None:
    service = WeatherService(latency=2.0)
    async with (
        open_session(
            weather_agent, model=realtime_model, channel=virtual_channel, context=Context(service)
        ) as session,
        session.events() as events,
    ):
        start = trio.current_time()
        await session.send_message("What's the weather in Paris?")
        call = await next_of(events, ToolCall)
        connection = await realtime_server.connection()

        await trio.sleep_until(start + 1.5)
        await connection.speech_started()  # the server hears the user talk over the assistant
        interrupted = await next_of(events, ResponseInterrupted)
        truncate = await connection.expect("conversation.item.truncate")

    assert truncate["audio_end_ms"] == 1500
    assert interrupted.played_ms == 1500
    assert interrupted.cancelled_call_ids == (call.call_id,)
    assert service.lookups == ["Paris"] and service.cancelled == ["Paris"]
    # The model is told the call was cancelled, and no answer is asked for.
    sent = connection.of_type("conversation.item.create")[-1]["item"]
    assert sent["call_id"] == call.call_id and "cancelled" in sent["output"]
    assert len(connection.of_type("response.create")) == 1  # the question's; no follow-up


async def test_a_spoken_question_is_heard_and_answered(
    start_realtime_server: RealtimeServerFactory, autojump_clock: trio.testing.MockClock
) -> None:
    # The embedded server detects speech by its energy, and is told what the utterance says:
    # it cannot recognise speech (the audio here is synthesized anyway).
    script = RuleScript(
        [
            Rule(
                pattern=r"weather in (?P<city>[a-z]+)",
                say="Let me check.",
                tool="get_weather",
                then_say="It is {temp_c} degrees in {city}.",
            )
        ]
    )
    question = "What's the weather in Rome?"
    server = await start_realtime_server(script, transcripts=[question])
    channel = VirtualChannel()
    service = WeatherService(latency=0.5)
    model = OpenAIRealtimeModel(base_url=server.url)
    async with (
        open_session(weather_agent, model=model, channel=channel, context=Context(service)) as s,
        s.events() as events,
    ):
        await s.update_config(SessionConfig(transcription=Transcription("gpt-4o-transcribe")))
        async with trio.open_nursery() as nursery:
            # The question, then a second of silence: the server hears the end of the turn.
            nursery.start_soon(channel.say, synthesize_speech(question) + bytes(48 * 1000))
            heard = await next_of(events, TranscriptInput)
            call = await next_of(events, ToolCall)
            await next_of(events, ToolOutput)

    assert heard.text == question
    assert orjson.loads(call.arguments) == {"city": "Rome"}
    assert service.lookups == ["Rome"]
