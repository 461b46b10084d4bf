"""The embedded server with a real session over WebSocket, in virtual time: turn detection,
commits, transcripts, responses and interruptions, as a client sees them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio
import trio.testing

from kernl_trio.agent import RealtimeAgent
from kernl_trio.audio import silence, tone
from kernl_trio.protocol import (
    PCM16_24K,
    PCMU_8K,
    AudioFormat,
    ManualTurns,
    ResponseDone,
    ResponseInterrupted,
    ServerVAD,
    SessionConfig,
    SpeechStarted,
    SpeechStopped,
    TranscriptInput,
    Transcription,
    TranscriptOutput,
)
from kernl_trio.providers.openai import OpenAIRealtimeModel
from kernl_trio.session import RealtimeSession, SessionEvent, Subscription, open_session
from kernl_trio.testing import AudioReply, Reply, VirtualChannel
from kernl_trio.testing.embedded import EmbeddedConnection, EmbeddedServer, Transcriber
from kernl_trio.testing.rules import Rule, RuleScript

AGENT = RealtimeAgent("t", name="T", instructions="Be brief.")
TRANSCRIBE = SessionConfig(transcription=Transcription("gpt-4o-mini-transcribe"))
GREETER = RuleScript([Rule(keywords=("hello",), say="Hello there!")], fallback="Pardon?")


def _utterance(fmt: AudioFormat = PCM16_24K, *, before: int = 500, ms: int = 1000) -> bytes:
    """``before`` ms of silence, ``ms`` of a loud tone, then a second of silence."""
    return silence(fmt, before) + tone(fmt, 300, ms, amplitude=0.4) + silence(fmt, 1000)


@attrs.define
class Run:
    server: EmbeddedServer
    connection: EmbeddedConnection
    session: RealtimeSession
    channel: VirtualChannel
    start: float
    seen: list[tuple[float, SessionEvent]] = attrs.field(factory=list)

    def of(self, kind: type[Any]) -> list[tuple[float, Any]]:
        """(seconds since start, event) of every event of ``kind`` seen."""
        return [(round(t - self.start, 6), e) for t, e in self.seen if isinstance(e, kind)]

    def sent_types(self) -> list[str]:
        return [str(e["type"]) for e in self.connection.sent]


@asynccontextmanager
async def _running(
    replies: Any = GREETER,
    *,
    transcripts: Sequence[str] | Transcriber = ("hello",),
    config: SessionConfig | None = TRANSCRIBE,
    channel: VirtualChannel | None = None,
) -> AsyncIterator[Run]:
    async with trio.open_nursery() as nursery:
        server = EmbeddedServer(replies, transcripts=transcripts)
        await nursery.start(server.run)
        channel = channel or VirtualChannel()
        model = OpenAIRealtimeModel(base_url=server.url)
        async with open_session(AGENT, model=model, channel=channel) as session:
            if config is not None:
                await session.update_config(config)
            connection = await server.connection()
            run = Run(server, connection, session, channel, trio.current_time())

            async def record(events: Subscription[SessionEvent]) -> None:
                async with events:
                    async for event in events:
                        run.seen.append((trio.current_time(), event))

            nursery.start_soon(record, session.events(1024))
            yield run
        nursery.cancel_scope.cancel()


async def test_speech_is_detected_committed_transcribed_and_answered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with _running() as run:
        await run.channel.say(_utterance())
        await trio.sleep(3)
    # Positions are in ms of input audio: the tone is at 500-1500 ms, the session's
    # turn detection has 300 ms of prefix padding and 200 ms of silence to stop.
    [(started_at, started)] = run.of(SpeechStarted)
    [(stopped_at, stopped)] = run.of(SpeechStopped)
    assert started.audio_start_ms == 200 and stopped.audio_end_ms == 1700
    # The server hears 100 ms of speech to start (the chunk 580-600 ms goes out at 0.58 s)
    # and 200 ms of silence to stop (the chunk 1680-1700 ms goes out at 1.68 s).
    assert (started_at, stopped_at) == (0.58, 1.68)
    [(_, heard)] = run.of(TranscriptInput)
    assert heard.item_id == started.item_id == stopped.item_id and heard.text == "hello"
    [(_, said)] = run.of(TranscriptOutput)
    assert said.text == "Hello there!"
    types = run.sent_types()
    after = types[types.index("input_audio_buffer.speech_stopped") :]
    assert after[:7] == [
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
    ]
    user = run.connection.conversation[0]
    assert user["id"] == started.item_id
    assert user["content"] == [{"type": "input_audio", "transcript": "hello"}]
    assert run.channel.played_ms(said.item_id) == 12 * 60  # the whole answer played


async def test_without_transcription_the_reply_still_knows_the_words(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with _running(config=None) as run:
        await run.channel.say(_utterance())
        await trio.sleep(3)
    assert run.of(TranscriptInput) == []
    assert not any("transcription" in t for t in run.sent_types())
    assert [e.text for _, e in run.of(TranscriptOutput)] == ["Hello there!"]


async def test_create_response_false_only_commits(autojump_clock: trio.testing.MockClock) -> None:
    config = attrs.evolve(TRANSCRIBE, turn_detection=ServerVAD(create_response=False))
    async with _running(config=config) as run:
        await run.channel.say(_utterance())
        await trio.sleep(3)
    types = run.sent_types()
    assert "input_audio_buffer.committed" in types and "response.created" not in types


async def test_speech_cancels_a_streaming_response_with_interrupt_response(
    autojump_clock: trio.testing.MockClock,
) -> None:
    long = [Reply.of(AudioReply("A long story.", ms=5000), realtime=True)]
    async with _running(long, transcripts=()) as run:
        await run.session.send_message("Tell me a story.")
        await trio.sleep(1.0)
        await run.channel.say(_utterance(before=0, ms=500))
        await trio.sleep(1)
    [(at, done), (_, answer)] = run.of(ResponseDone)  # the story, then the answer to the user
    assert (at, done.status.value, done.reason) == (1.08, "cancelled", "turn_detected")
    assert answer.status.value == "completed"
    # The server cancelled: the session only truncates, at what was heard.
    assert run.connection.of_type("response.cancel") == []
    [truncate] = run.connection.of_type("conversation.item.truncate")
    assert truncate["audio_end_ms"] == 1080
    [(_, interrupted)] = run.of(ResponseInterrupted)
    assert interrupted.played_ms == 1080 and interrupted.source == "server"


async def test_without_interrupt_response_the_client_cancels(
    autojump_clock: trio.testing.MockClock,
) -> None:
    long = [Reply.of(AudioReply("A long story.", ms=5000), realtime=True)]
    config = SessionConfig(turn_detection=ServerVAD(interrupt_response=False))
    async with _running(long, transcripts=(), config=config) as run:
        await run.session.send_message("Tell me a story.")
        await trio.sleep(1.0)
        await run.channel.say(_utterance(before=0, ms=500))
        await trio.sleep(1)
    [cancel] = run.connection.of_type("response.cancel")
    [(_, done), *_] = run.of(ResponseDone)
    assert (done.status.value, done.reason) == ("cancelled", "client_cancelled")
    assert cancel["response_id"] == done.response_id
    [truncate] = run.connection.of_type("conversation.item.truncate")
    assert truncate["audio_end_ms"] == 1080


async def test_manual_turns_have_no_detection_but_commits_get_transcripts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = attrs.evolve(TRANSCRIBE, turn_detection=ManualTurns())
    async with _running(config=config) as run:
        await run.channel.say(_utterance())
        assert run.of(SpeechStarted) == [] and run.connection.of_type("response.create") == []
        await run.session.commit()
        await run.connection.expect("input_audio_buffer.commit")
        await trio.sleep(0.1)
        assert [e.text for _, e in run.of(TranscriptInput)] == ["hello"]
        assert "response.created" not in run.sent_types()
        await run.session.create_response()
        await trio.sleep(3)
    assert [e.text for _, e in run.of(TranscriptOutput)] == ["Hello there!"]


async def test_an_utterance_without_a_transcript(autojump_clock: trio.testing.MockClock) -> None:
    async with _running(transcripts=()) as run:
        await run.channel.say(_utterance())
        await trio.sleep(3)
    [failed] = [e for e in run.connection.sent if e["type"].endswith("transcription.failed")]
    assert failed["error"]["code"] == "audio_unintelligible"
    assert [e.text for _, e in run.of(TranscriptOutput)] == [GREETER.unheard]


async def test_a_transcriber_sees_each_committed_utterance(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def transcribe(index: int, audio: bytes) -> str:
        return f"utterance {index}, {len(audio) // 48} ms"

    async with _running(transcripts=transcribe) as run:
        await run.channel.say(_utterance() + _utterance())
        await trio.sleep(3)
    # The first commit holds the audio from the start to the end of speech; the second
    # from there on (its leading silence included).
    assert [e.text for _, e in run.of(TranscriptInput)] == [
        "utterance 0, 1700 ms",
        "utterance 1, 2500 ms",
    ]
    assert run.connection.utterances == 2


async def test_audio_after_the_end_of_speech_stays_in_the_buffer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with _running(transcripts=()) as run:
        loud = tone(PCM16_24K, 300, 300, amplitude=0.4)
        await run.session.send_audio(loud + silence(PCM16_24K, 300) + loud[: 100 * 48])
        await run.connection.expect("input_audio_buffer.append")
        await trio.sleep(0.1)
        [committed] = [e for e in run.connection.sent if e["type"].endswith("committed")]
        # Speech stopped at 500 ms (300 of tone, 200 of silence): the last 200 ms wait.
        assert len(run.connection.input_audio) == 200 * 48
        assert committed["item_id"] == run.connection.conversation[0]["id"]


async def test_g711_input_is_heard_at_the_same_positions(
    autojump_clock: trio.testing.MockClock,
) -> None:
    channel = VirtualChannel(input_format=PCMU_8K, output_format=PCMU_8K)
    async with _running(channel=channel) as run:
        await channel.say(_utterance(PCMU_8K))
        await trio.sleep(3)
    [(_, started)] = run.of(SpeechStarted)
    [(_, stopped)] = run.of(SpeechStopped)
    assert (started.audio_start_ms, stopped.audio_end_ms) == (200, 1700)
    [(_, said)] = run.of(TranscriptOutput)
    assert channel.played_ms(said.item_id) == 12 * 60
