"""The OpenAI GA codec against the transcripts in tests/data/openai_ga_transcripts.txt.

Every server line must decode, the interesting ones to exactly the event written out here;
every client line with a neutral counterpart must be exactly what the codec encodes; and
everything the codec encodes must validate against the official ``openai`` package's pydantic
models without a field being dropped or coerced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest

from kernl_trio.errors import EncodeError, FrameDecodeError
from kernl_trio.protocol import (
    PCM16_24K,
    PCMA_8K,
    PCMU_8K,
    ActivityEnd,
    ActivityStart,
    AudioEncoding,
    AudioFormat,
    AudioInputAppend,
    AudioInputClear,
    AudioInputCleared,
    AudioInputCommit,
    AudioInputCommitted,
    AudioOutputDelta,
    AudioOutputDone,
    ClientEvent,
    FunctionTool,
    InputAudio,
    InputImage,
    InputText,
    ItemCreate,
    ItemCreated,
    ItemDelete,
    ItemDeleted,
    ItemTruncate,
    ItemTruncated,
    ManualTurns,
    MessageItem,
    OutputAudio,
    OutputText,
    ProviderEvent,
    ProviderItem,
    RealtimeError,
    ResponseCancel,
    ResponseConfig,
    ResponseCreate,
    ResponseCreated,
    ResponseDone,
    ResponseStatus,
    SemanticVAD,
    ServerEvent,
    ServerVAD,
    SessionConfig,
    SessionCreated,
    SessionError,
    SessionInfo,
    SessionUpdate,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    TextOutput,
    TextOutputDelta,
    ToolCall,
    ToolCallItem,
    ToolChoiceFunction,
    ToolDelta,
    ToolResult,
    ToolResultItem,
    ToolStart,
    TranscriptInput,
    TranscriptInputDelta,
    Transcription,
    TranscriptOutput,
    TranscriptOutputDelta,
    Usage,
    user_text,
)
from kernl_trio.providers.openai.codec import (
    BETA_SERVER_EVENTS,
    GA_SERVER_EVENTS,
    PROVIDER_ONLY_SERVER_EVENTS,
    OpenAICodec,
)

from .openai_models import assert_no_extras, client_adapter, ga_server_types

DATA = Path(__file__).parent / "data" / "openai_ga_transcripts.txt"


def load_transcripts() -> dict[str, list[tuple[str, str]]]:
    """Section ("B.1", ...) -> [(direction "c" or "s", JSON text), ...] in order."""
    transcripts: dict[str, list[tuple[str, str]]] = {}
    section = ""
    for line in DATA.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = line.split()[1]
            transcripts[section] = []
        elif line.startswith(("c> ", "s> ")):
            transcripts[section].append((line[0], line[3:]))
    return transcripts


TRANSCRIPTS = load_transcripts()
SECTIONS = sorted(TRANSCRIPTS)
SILENCE_1MS = bytes(48)  # what every "AAAA..." placeholder decodes to


def decode_transcript(section: str) -> dict[str, ServerEvent]:
    """Decode one transcript's server lines in order with one codec; by server event_id."""
    codec = OpenAICodec()
    return {
        orjson.loads(text)["event_id"]: codec.decode(text)
        for direction, text in TRANSCRIPTS[section]
        if direction == "s"
    }


def assert_valid_ga_client_event(wire: dict[str, Any]) -> None:
    """``wire`` validates against openai's models, with no extra, dropped or coerced field."""
    model = client_adapter().validate_python(wire)
    assert_no_extras(model)
    assert model.model_dump(mode="json", exclude_unset=True) == wire


# --- transcripts: server lines ----------------------------------------------------------


def test_transcripts_are_all_there() -> None:
    assert SECTIONS == ["B.1", "B.2", "B.3", "B.4", "B.5"]
    assert [len(lines) for lines in TRANSCRIPTS.values()] == [20, 37, 29, 4, 7]


@pytest.mark.parametrize("section", SECTIONS)
def test_every_server_line_decodes_to_its_mapped_class(section: str) -> None:
    codec = OpenAICodec()
    for direction, text in TRANSCRIPTS[section]:
        if direction != "s":
            continue
        wire_type = orjson.loads(text)["type"]
        event = codec.decode(text)
        if wire_type in PROVIDER_ONLY_SERVER_EVENTS:
            assert event == ProviderEvent(wire_type, orjson.loads(text), known=True)
        elif wire_type == "response.output_item.added" and not isinstance(event, ToolStart):
            assert isinstance(event, ProviderEvent)
            assert event.known
        else:
            assert type(event) is GA_SERVER_EVENTS[wire_type]


DEFAULT_VAD = ServerVAD(
    threshold=0.5,
    prefix_padding_ms=300,
    silence_duration_ms=200,
    create_response=True,
    interrupt_response=True,
)
DEFAULT_CONFIG = SessionConfig(
    instructions="Your knowledge cutoff is 2023-10. You are a helpful, witty, and friendly AI.",
    tools=(),
    tool_choice="auto",
    modalities=("audio",),
    voice="marin",
    input_format=PCM16_24K,
    output_format=PCM16_24K,
    turn_detection=DEFAULT_VAD,
    transcription=None,
    speed=1.0,
    max_output_tokens="inf",
)
WEATHER = FunctionTool(
    name="get_weather",
    description="Get current weather for a city. Call when the caller asks about weather.",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string", "description": "City name, e.g. Paris"}},
        "required": ["city"],
        "additionalProperties": False,
    },
)
END_CALL = FunctionTool(
    name="end_call",
    description="Hang up the phone call after saying goodbye.",
    parameters={"type": "object", "properties": {"reason": {"type": "string"}}, "required": []},
)
PHONE_CONFIG = SessionConfig(
    instructions="You are a phone receptionist for Acme Bakery. Keep answers short.",
    tools=(WEATHER, END_CALL),
    tool_choice="auto",
    modalities=("audio",),
    voice="marin",
    input_format=PCMU_8K,
    output_format=PCMU_8K,
    turn_detection=ServerVAD(
        threshold=0.6,
        prefix_padding_ms=300,
        silence_duration_ms=500,
        idle_timeout_ms=8000,
        create_response=True,
        interrupt_response=True,
    ),
    transcription=Transcription(model="gpt-4o-mini-transcribe", language="en"),
    speed=1.0,
    max_output_tokens=1024,
)


def _usage(inp: int, out: int, details: dict[str, Any]) -> Usage:
    return Usage(input_tokens=inp, output_tokens=out, total_tokens=inp + out, details=details)


EXPECTED: dict[str, dict[str, ServerEvent]] = {
    "B.1": {
        "event_t1_001": SessionCreated(
            SessionInfo("sess_t1_0001", DEFAULT_CONFIG, model="gpt-realtime-2025-08-28")
        ),
        "event_t1_002": ItemCreated(
            MessageItem(
                "user", (InputText("What is two plus two?"),), "item_t1_user01", "completed"
            )
        ),
        "event_t1_004": ResponseCreated("resp_t1_0001"),
        "event_t1_007": ItemCreated(
            MessageItem("assistant", (), "item_t1_asst01", "in_progress"),
            previous_item_id="item_t1_user01",
        ),
        "event_t1_009": TranscriptOutputDelta("resp_t1_0001", "item_t1_asst01", "Two plus two"),
        "event_t1_010": AudioOutputDelta("resp_t1_0001", "item_t1_asst01", SILENCE_1MS),
        "event_t1_013": AudioOutputDone("resp_t1_0001", "item_t1_asst01"),
        "event_t1_014": TranscriptOutput("resp_t1_0001", "item_t1_asst01", "Two plus two is four."),
        "event_t1_018": ResponseDone(
            "resp_t1_0001",
            ResponseStatus.COMPLETED,
            usage=_usage(
                140,
                37,
                {
                    "input_token_details": {
                        "text_tokens": 127,
                        "audio_tokens": 13,
                        "image_tokens": 0,
                        "cached_tokens": 64,
                        "cached_tokens_details": {
                            "text_tokens": 64,
                            "audio_tokens": 0,
                            "image_tokens": 0,
                        },
                    },
                    "output_token_details": {"text_tokens": 10, "audio_tokens": 27},
                },
            ),
        ),
    },
    "B.2": {
        "event_t2_001": SessionUpdated(
            SessionInfo(
                "sess_t2_0001",
                SessionConfig(
                    instructions=DEFAULT_CONFIG.instructions,
                    tools=(),
                    tool_choice="auto",
                    modalities=("audio",),
                    voice="marin",
                    input_format=PCM16_24K,
                    output_format=PCM16_24K,
                    turn_detection=ServerVAD(0.5, 300, 500, None, True, False),
                    transcription=Transcription("gpt-4o-mini-transcribe", "en", None),
                    speed=1.0,
                    max_output_tokens="inf",
                ),
                model="gpt-realtime-2025-08-28",
            )
        ),
        "event_t2_002": SpeechStarted("item_t2_user01", audio_start_ms=1000),
        "event_t2_003": SpeechStopped("item_t2_user01", audio_end_ms=2600),
        "event_t2_004": AudioInputCommitted("item_t2_user01", previous_item_id=None),
        "event_t2_005": ItemCreated(
            MessageItem("user", (InputAudio(transcript=None),), "item_t2_user01", "completed")
        ),
        "event_t2_008": TranscriptInputDelta("item_t2_user01", "When do you open"),
        "event_t2_011": TranscriptInput("item_t2_user01", "When do you open tomorrow?"),
        "event_t2_014": AudioOutputDelta("resp_t2_0001", "item_t2_asst01", SILENCE_1MS),
        "event_t2_018": SpeechStarted("item_t2_user02", audio_start_ms=4200),
        "event_t2_020": TranscriptOutput("resp_t2_0001", "item_t2_asst01", "We open at nine"),
        "event_t2_024": ResponseDone(
            "resp_t2_0001",
            ResponseStatus.CANCELLED,
            usage=_usage(
                160,
                30,
                {
                    "input_token_details": {
                        "text_tokens": 120,
                        "audio_tokens": 40,
                        "image_tokens": 0,
                        "cached_tokens": 0,
                        "cached_tokens_details": {
                            "text_tokens": 0,
                            "audio_tokens": 0,
                            "image_tokens": 0,
                        },
                    },
                    "output_token_details": {"text_tokens": 6, "audio_tokens": 24},
                },
            ),
            reason="client_cancelled",
        ),
        "event_t2_025": ItemTruncated("item_t2_asst01", audio_end_ms=3, content_index=0),
        "event_t2_027": AudioInputCommitted("item_t2_user02", previous_item_id="item_t2_asst01"),
    },
    "B.3": {
        "event_t3_004": ToolStart(
            "call_t3_Xy12", "get_weather", response_id="resp_t3_0001", item_id="item_t3_fc01"
        ),
        "event_t3_005": ItemCreated(
            ToolCallItem("call_t3_Xy12", "get_weather", "", "item_t3_fc01", "in_progress"),
            previous_item_id="item_t3_user01",
        ),
        "event_t3_006": ToolDelta("call_t3_Xy12", '{"city":', "resp_t3_0001", "item_t3_fc01"),
        "event_t3_007": ToolDelta("call_t3_Xy12", '"Paris"}', "resp_t3_0001", "item_t3_fc01"),
        "event_t3_008": ToolCall(
            "call_t3_Xy12",
            "get_weather",
            '{"city":"Paris"}',
            response_id="resp_t3_0001",
            item_id="item_t3_fc01",
        ),
        "event_t3_012": ItemCreated(
            ToolResultItem(
                "call_t3_Xy12",
                '{"temp_c":18,"conditions":"cloudy"}',
                "item_t3_fco01",
                "completed",
            ),
            previous_item_id="item_t3_fc01",
        ),
    },
    "B.4": {
        "event_t4_001": SessionError(
            RealtimeError(
                "The 'type' field is missing.",
                type="invalid_request_error",
                code="invalid_event",
                event_id="evt_c_t4_01",
            )
        ),
        "event_t4_002": SessionError(
            RealtimeError(
                "Cancellation failed: no active response found",
                type="invalid_request_error",
                code="response_cancel_not_active",
                event_id="evt_c_t4_02",
            )
        ),
    },
    "B.5": {
        "event_t5_001": SessionCreated(
            SessionInfo("sess_t5_0001", DEFAULT_CONFIG, model="gpt-realtime-2025-08-28")
        ),
        "event_t5_002": SessionUpdated(
            SessionInfo("sess_t5_0001", PHONE_CONFIG, model="gpt-realtime-2025-08-28")
        ),
        "event_t5_003": SessionUpdated(
            SessionInfo(
                "sess_t5_0001",
                attrs.evolve(PHONE_CONFIG, turn_detection=SemanticVAD("low", True, True)),
                model="gpt-realtime-2025-08-28",
            )
        ),
        "event_t5_004": SessionUpdated(
            SessionInfo(
                "sess_t5_0001",
                attrs.evolve(PHONE_CONFIG, tools=(), turn_detection=ManualTurns()),
                model="gpt-realtime-2025-08-28",
            )
        ),
    },
}


@pytest.mark.parametrize("section", SECTIONS)
def test_interesting_server_lines_decode_exactly(section: str) -> None:
    decoded = decode_transcript(section)
    for event_id, expected in EXPECTED[section].items():
        assert decoded[event_id] == expected, event_id


def test_audio_deltas_are_bytes_decoded_once() -> None:
    for section in SECTIONS:
        for event in decode_transcript(section).values():
            if isinstance(event, AudioOutputDelta):
                assert event.audio == SILENCE_1MS
                assert type(event.audio) is bytes


def test_provider_events_keep_the_frame_as_sent() -> None:
    frame = next(text for _, text in TRANSCRIPTS["B.1"] if "rate_limits.updated" in text)
    assert OpenAICodec().decode(frame) == ProviderEvent(
        "rate_limits.updated", orjson.loads(frame), known=True
    )


# --- transcripts: client lines ----------------------------------------------------------

_APPEND = AudioInputAppend(SILENCE_1MS)
_B5_UPDATE = SessionConfig(
    instructions=PHONE_CONFIG.instructions,
    modalities=("audio",),
    input_format=PCMU_8K,
    transcription=Transcription("gpt-4o-mini-transcribe", "en"),
    turn_detection=PHONE_CONFIG.turn_detection,
    output_format=PCMU_8K,
    voice="marin",
    speed=1.0,
    tools=(WEATHER, END_CALL),
    tool_choice="auto",
    max_output_tokens=1024,
)

# In transcript order; None marks a line with no neutral counterpart (B.4's type-less event).
CLIENT_EVENTS: dict[str, list[ClientEvent | None]] = {
    "B.1": [
        ItemCreate(user_text("What is two plus two?"), event_id="evt_c_t1_01"),
        ResponseCreate(ResponseConfig(modalities=("audio",)), event_id="evt_c_t1_02"),
    ],
    "B.2": [
        SessionUpdate(
            SessionConfig(
                input_format=PCM16_24K,
                transcription=Transcription("gpt-4o-mini-transcribe", "en"),
                turn_detection=ServerVAD(
                    threshold=0.5,
                    prefix_padding_ms=300,
                    silence_duration_ms=500,
                    create_response=True,
                    interrupt_response=False,
                ),
                output_format=PCM16_24K,
                voice="marin",
            ),
            event_id="evt_c_t2_01",
        ),
        _APPEND,
        _APPEND,
        _APPEND,
        _APPEND,
        ResponseCancel("resp_t2_0001", event_id="evt_c_t2_02"),
        ItemTruncate("item_t2_asst01", audio_end_ms=3, event_id="evt_c_t2_03"),
        _APPEND,
    ],
    "B.3": [
        ItemCreate(user_text("What's the weather in Paris right now?"), event_id="evt_c_t3_01"),
        ResponseCreate(event_id="evt_c_t3_02"),
        ToolResult("call_t3_Xy12", '{"temp_c":18,"conditions":"cloudy"}', event_id="evt_c_t3_03"),
        ResponseCreate(event_id="evt_c_t3_04"),
    ],
    "B.4": [None, ResponseCancel(event_id="evt_c_t4_02")],
    "B.5": [
        SessionUpdate(_B5_UPDATE, event_id="evt_c_t5_01"),
        SessionUpdate(
            SessionConfig(turn_detection=SemanticVAD("low", True, True)), event_id="evt_c_t5_02"
        ),
        SessionUpdate(
            SessionConfig(turn_detection=ManualTurns(), tools=()), event_id="evt_c_t5_03"
        ),
    ],
}


def _without_noise_reduction(wire: dict[str, Any]) -> dict[str, Any]:
    """B.5's first update sets noise_reduction, which the neutral config does not model."""
    wire = orjson.loads(orjson.dumps(wire))
    wire.get("session", {}).get("audio", {}).get("input", {}).pop("noise_reduction", None)
    return wire


@pytest.mark.parametrize("section", SECTIONS)
def test_every_client_line_is_what_the_codec_encodes(section: str) -> None:
    lines = [text for direction, text in TRANSCRIPTS[section] if direction == "c"]
    events = CLIENT_EVENTS[section]
    assert len(lines) == len(events)
    codec = OpenAICodec()
    for text, event in zip(lines, events, strict=True):
        if event is None:
            assert "type" not in orjson.loads(text)
            continue
        assert codec.encode(event) == [_without_noise_reduction(orjson.loads(text))]


@pytest.mark.parametrize("section", SECTIONS)
def test_transcript_client_events_validate_against_openai(section: str) -> None:
    codec = OpenAICodec()
    for event in CLIENT_EVENTS[section]:
        if event is not None:
            for wire in codec.encode(event):
                assert_valid_ga_client_event(wire)


# --- encoding beyond the transcripts ----------------------------------------------------

BROAD_CLIENT_EVENTS: list[ClientEvent] = [
    SessionUpdate(SessionConfig()),
    SessionUpdate(
        SessionConfig(
            instructions="",
            tools=(FunctionTool("noop"),),
            tool_choice=ToolChoiceFunction("noop"),
            modalities=("text",),
            voice="cedar",
            input_format=PCMA_8K,
            output_format=PCMA_8K,
            turn_detection=SemanticVAD(eagerness="auto"),
            transcription=Transcription("whisper-1", prompt="bakery words"),
            speed=1.25,
            max_output_tokens="inf",
        ),
        event_id="e1",
    ),
    SessionUpdate(SessionConfig(tool_choice="required", turn_detection=ServerVAD())),
    SessionUpdate(SessionConfig(tool_choice="none", turn_detection=ServerVAD(idle_timeout_ms=1))),
    ItemCreate(user_text("hi"), previous_item_id="root"),
    ItemCreate(MessageItem("user", (InputAudio(b"\x01\x02\x03"), InputText("x")), id="i1")),
    ItemCreate(MessageItem("user", (InputAudio(b"\x00\x00", transcript="hm"),))),
    ItemCreate(MessageItem("system", (InputText("Be brief."),), status="completed")),
    ItemCreate(MessageItem("assistant", (OutputText("ok"), OutputAudio(transcript="ok")))),
    ItemCreate(ToolCallItem("call_1", "get_weather", '{"city":"Oslo"}', id="fc_1")),
    ItemCreate(ToolResultItem("call_1", "sunny", status="completed"), event_id="e2"),
    ItemDelete("item_1", event_id="e3"),
    ItemTruncate("item_2", audio_end_ms=0),
    ItemTruncate("item_2", audio_end_ms=1500, content_index=1, event_id="e4"),
    AudioInputAppend(b""),
    AudioInputAppend(bytes(range(256)) * 4, event_id="e5"),
    AudioInputCommit(),
    AudioInputCommit(event_id="e6"),
    AudioInputClear(),
    ResponseCreate(ResponseConfig()),
    ResponseCreate(
        ResponseConfig(
            instructions="Say bye.",
            modalities=("audio",),
            tool_choice=ToolChoiceFunction("end_call"),
            metadata={"turn": "7"},
            conversation="none",
            max_output_tokens=200,
        ),
        event_id="e7",
    ),
    ResponseCreate(ResponseConfig(tool_choice="auto", max_output_tokens="inf")),
    ResponseCancel(),
    ToolResult("call_2", "boom", error=True),
]


@pytest.mark.parametrize("event", BROAD_CLIENT_EVENTS, ids=lambda e: e.kind)
def test_encoded_client_events_validate_against_openai(event: ClientEvent) -> None:
    (wire,) = OpenAICodec().encode(event)
    assert_valid_ga_client_event(wire)
    assert (wire.get("event_id")) == event.event_id


def test_encoding_details() -> None:
    codec = OpenAICodec()
    assert codec.encode(SessionUpdate(SessionConfig())) == [
        {"type": "session.update", "session": {"type": "realtime"}}
    ]
    assert codec.encode(ResponseCreate()) == [{"type": "response.create"}]
    assert codec.encode(ResponseCreate(ResponseConfig())) == [
        {"type": "response.create", "response": {}}
    ]
    assert codec.encode(ItemTruncate("i", audio_end_ms=0)) == [
        {
            "type": "conversation.item.truncate",
            "item_id": "i",
            "audio_end_ms": 0,
            "content_index": 0,
        }
    ]
    assert codec.encode(AudioInputAppend(b"\x00\xff")) == [
        {"type": "input_audio_buffer.append", "audio": "AP8="}
    ]
    assert codec.encode(ToolResult("c", "nope", error=True, event_id="e")) == [
        {
            "type": "conversation.item.create",
            "event_id": "e",
            "item": {"type": "function_call_output", "call_id": "c", "output": "nope"},
        }
    ]
    assert codec.encode(ItemCreate(ProviderItem("mcp_call", {"type": "mcp_call", "id": "m"}))) == [
        {"type": "conversation.item.create", "item": {"type": "mcp_call", "id": "m"}}
    ]


def test_activity_markers_have_no_openai_counterpart() -> None:
    codec = OpenAICodec()
    assert codec.encode(ActivityStart()) == []
    assert codec.encode(ActivityEnd(event_id="x")) == []
    assert codec.encode_frames(ActivityStart()) == []


def test_encode_frames_is_json_of_encode() -> None:
    codec = OpenAICodec()
    for event in BROAD_CLIENT_EVENTS:
        frames = codec.encode_frames(event)
        assert all(isinstance(f, str) for f in frames)
        assert [orjson.loads(f) for f in frames] == codec.encode(event)


@pytest.mark.parametrize(
    "event",
    [
        SessionUpdate(SessionConfig(input_format=AudioFormat(AudioEncoding.PCM16, 16000))),
        SessionUpdate(SessionConfig(output_format=AudioFormat(AudioEncoding.PCMU, 16000))),
        AudioInputAppend("not bytes"),  # type: ignore[arg-type]
    ],
)
def test_inexpressible_events_raise_encode_error(event: ClientEvent) -> None:
    with pytest.raises(EncodeError):
        OpenAICodec().encode(event)
    with pytest.raises(EncodeError):
        OpenAICodec().encode_frames(event)


def test_encoding_a_non_client_event_raises_encode_error() -> None:
    with pytest.raises(EncodeError):
        OpenAICodec().encode(ResponseCreated("r"))  # type: ignore[arg-type]


def test_unserialisable_metadata_raises_encode_error() -> None:
    event = ResponseCreate(ResponseConfig(metadata={"k": {1, 2}}))  # type: ignore[dict-item]
    with pytest.raises(EncodeError):
        OpenAICodec().encode_frames(event)


# --- decoding beyond the transcripts ----------------------------------------------------


def test_every_ga_server_type_is_handled_explicitly() -> None:
    ga = ga_server_types()
    assert len(ga) == 46
    assert set(GA_SERVER_EVENTS) | PROVIDER_ONLY_SERVER_EVENTS == ga
    assert not set(GA_SERVER_EVENTS) & PROVIDER_ONLY_SERVER_EVENTS
    assert not set(BETA_SERVER_EVENTS) & ga


@pytest.mark.parametrize("wire_type", sorted(PROVIDER_ONLY_SERVER_EVENTS))
def test_provider_only_types_are_known_provider_events(wire_type: str) -> None:
    message = {"type": wire_type, "event_id": "event_1", "anything": [1, {"x": None}]}
    assert OpenAICodec().decode_message(message) == ProviderEvent(wire_type, message, known=True)


def test_unknown_types_are_unknown_provider_events() -> None:
    frame = '{"type":"response.brand_new","event_id":"e","payload":{"a":1}}'
    assert OpenAICodec().decode(frame) == ProviderEvent(
        "response.brand_new", orjson.loads(frame), known=False
    )


USER_YO = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "yo"}]}


def _ids(**extra: Any) -> dict[str, Any]:
    return {"event_id": "ev", "response_id": "r", "item_id": "i", "output_index": 0, **extra}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            {"type": "response.audio.delta", **_ids(content_index=0, delta="AAAA")},
            AudioOutputDelta("r", "i", b"\x00\x00\x00"),
        ),
        ({"type": "response.audio.done", **_ids(content_index=2)}, AudioOutputDone("r", "i", 2)),
        (
            {"type": "response.audio_transcript.delta", **_ids(content_index=0, delta="he")},
            TranscriptOutputDelta("r", "i", "he"),
        ),
        (
            {"type": "response.audio_transcript.done", **_ids(content_index=0, transcript="hey")},
            TranscriptOutput("r", "i", "hey"),
        ),
        (
            {"type": "response.text.delta", **_ids(content_index=0, delta="t")},
            TextOutputDelta("r", "i", "t"),
        ),
        (
            {"type": "response.text.done", **_ids(content_index=0, text="tx")},
            TextOutput("r", "i", "tx"),
        ),
        (
            {"type": "response.output_text.delta", **_ids(content_index=1, delta="t")},
            TextOutputDelta("r", "i", "t", 1),
        ),
        (
            {"type": "response.output_text.done", **_ids(content_index=0, text="tx")},
            TextOutput("r", "i", "tx"),
        ),
        (
            {"type": "conversation.item.created", "event_id": "e", "item": USER_YO},
            ItemCreated(user_text("yo")),
        ),
        ({"type": "conversation.item.deleted", "event_id": "e", "item_id": "i"}, ItemDeleted("i")),
        ({"type": "input_audio_buffer.cleared", "event_id": "e"}, AudioInputCleared()),
        (
            {"type": "conversation.item.input_audio_transcription.delta", "item_id": "i"},
            TranscriptInputDelta("i", ""),
        ),
        (
            {"type": "response.output_audio.delta", **_ids(delta="AAAA")},
            AudioOutputDelta("r", "i", b"\x00\x00\x00", 0),
        ),
    ],
    ids=lambda v: v["type"] if isinstance(v, dict) else "",
)
def test_other_mapped_and_beta_types(message: dict[str, Any], expected: ServerEvent) -> None:
    assert OpenAICodec().decode_message(message) == expected


def test_unmodelled_items_and_parts_become_provider_items() -> None:
    codec = OpenAICodec()
    mcp: dict[str, Any] = {
        "type": "mcp_call",
        "id": "m1",
        "name": "x",
        "server_label": "s",
        "arguments": "{}",
    }
    unknown_part: dict[str, Any] = {
        "type": "message",
        "id": "i1",
        "role": "user",
        "content": [{"type": "input_hologram", "data": "AA=="}],
    }
    for item in (mcp, unknown_part):
        event = codec.decode_message({"type": "conversation.item.added", "item": item})
        assert event == ItemCreated(ProviderItem(item["type"], item, item["id"]))


def test_image_parts_and_extra_event_fields_encode() -> None:
    image = InputImage.from_bytes(b"\x89PNG", "image/png")
    message = MessageItem("user", (InputText("what is this?"), image))
    [wire] = OpenAICodec().encode(ItemCreate(message, extra={"event_id": "e1", "type": "x"}))
    assert wire == {
        "type": "conversation.item.create",
        "event_id": "e1",
        "item": {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "what is this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBORw=="},
            ],
        },
    }
    client_adapter().validate_python(wire)  # the official types accept it
    added = {"type": "conversation.item.added", "item": wire["item"]}
    decoded = OpenAICodec().decode_message(added)
    assert decoded == ItemCreated(message)


def test_beta_item_part_spellings_decode() -> None:
    item = {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": "a"}, {"type": "audio", "transcript": "b"}],
    }
    event = OpenAICodec().decode_message({"type": "conversation.item.added", "item": item})
    assert event == ItemCreated(MessageItem("assistant", (OutputText("a"), OutputAudio("b"))))


def test_beta_session_shape_decodes() -> None:
    session = {
        "id": "sess_beta",
        "modalities": ["text", "audio"],
        "voice": "alloy",
        "input_audio_format": "g711_ulaw",
        "output_audio_format": "g711_alaw",
        "input_audio_transcription": {"model": "whisper-1"},
        "turn_detection": {"type": "server_vad", "threshold": 0.5},
        "max_response_output_tokens": 99,
        "temperature": 0.8,
    }
    event = OpenAICodec().decode_message({"type": "session.updated", "session": session})
    assert event == SessionUpdated(
        SessionInfo(
            "sess_beta",
            SessionConfig(
                modalities=("text", "audio"),
                voice="alloy",
                input_format=PCMU_8K,
                output_format=PCMA_8K,
                transcription=Transcription("whisper-1"),
                turn_detection=ServerVAD(threshold=0.5),
                max_output_tokens=99,
            ),
        )
    )


def test_ga_features_without_neutral_spelling_are_left_out() -> None:
    session = {
        "type": "realtime",
        "tools": [{"type": "mcp", "server_label": "x"}, {"name": "bare", "parameters": None}],
        "tool_choice": {"type": "mcp", "server_label": "x", "name": "y"},
        "audio": {"output": {"voice": {"id": "voice_123"}}, "input": {"noise_reduction": None}},
    }
    event = OpenAICodec().decode_message({"type": "session.created", "session": session})
    assert event == SessionCreated(
        SessionInfo(None, SessionConfig(tools=(FunctionTool("bare"),), tool_choice=None))
    )


def test_response_done_failure_details() -> None:
    message = {
        "type": "response.done",
        "response": {
            "id": "r",
            "status": "failed",
            "status_details": {
                "type": "failed",
                "error": {"type": "server_error", "code": "overloaded"},
            },
            "usage": None,
        },
    }
    assert OpenAICodec().decode_message(message) == ResponseDone(
        "r",
        ResponseStatus.FAILED,
        error=RealtimeError("overloaded", type="server_error", code="overloaded"),
    )


def test_tool_call_name_falls_back_to_the_announced_item() -> None:
    codec = OpenAICodec()
    added = {
        "type": "response.output_item.added",
        "response_id": "r",
        "output_index": 0,
        "item": {
            "type": "function_call",
            "id": "fc",
            "call_id": "c1",
            "name": "w",
            "arguments": "",
        },
    }
    assert codec.decode_message(added) == ToolStart("c1", "w", "r", "fc")
    done = {"type": "response.function_call_arguments.done", **_ids(call_id="c1", arguments="{}")}
    assert codec.decode_message(done) == ToolCall("c1", "w", "{}", "r", "i")


def test_tool_call_name_from_a_conversation_item() -> None:
    codec = OpenAICodec()
    item = {"type": "function_call", "call_id": "c2", "name": "v", "arguments": ""}
    codec.decode_message({"type": "conversation.item.added", "item": item})
    done = {"type": "response.function_call_arguments.done", **_ids(call_id="c2", arguments="1")}
    assert codec.decode_message(done) == ToolCall("c2", "v", "1", "r", "i")


def test_tool_call_without_any_name_is_a_decode_error() -> None:
    frame = orjson.dumps(
        {"type": "response.function_call_arguments.done", **_ids(call_id="c9", arguments="{}")}
    )
    with pytest.raises(FrameDecodeError) as info:
        OpenAICodec().decode(frame)
    assert info.value.frame is frame
    assert "c9" in info.value.reason


def test_remembered_tool_names_are_bounded() -> None:
    codec = OpenAICodec()
    for n in range(1000):
        item = {"type": "function_call", "call_id": f"c{n}", "name": "t", "arguments": ""}
        codec.decode_message({"type": "conversation.item.added", "item": item})
    assert len(codec._tool_names) <= 256


AUDIO_DELTA = next(
    text for _, text in TRANSCRIPTS["B.1"] if '"response.output_audio.delta"' in text
)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        ("{", "not JSON"),
        ("[1, 2]", "not a JSON object but array"),
        ('"session.created"', "not a JSON object but string"),
        ("{}", "no 'type'"),
        ('{"type": 5}', "'type' is not a string"),
        ('{"type": ["error"]}', "'type' is not a string"),
        (AUDIO_DELTA.replace('"delta":"AAAA', '"delta":"!AAA'), "invalid base64"),
        (AUDIO_DELTA.replace('"delta":"AAAAAAAA', '"delta":"AAAAAAA'), "invalid base64"),
        (AUDIO_DELTA.replace('"delta":"', '"delta":7,"x":"'), "expected base64 text"),
        (AUDIO_DELTA.replace('"item_id":"item_t1_asst01"', '"item_id":1'), "expected a string"),
        (AUDIO_DELTA.replace('"content_index":0', '"content_index":"0"'), "expected an integer"),
        (AUDIO_DELTA.replace('"content_index":0', '"content_index":true'), "expected an integer"),
        (AUDIO_DELTA.replace('"response_id"', '"rsp_id"'), "missing field 'response_id'"),
        ('{"type":"error","error":"boom"}', "invalid 'error' event"),
        ('{"type":"error","error":{"type":"x"}}', "missing field 'message'"),
        ('{"type":"response.done","response":{"id":"r","status":"exploded"}}', "exploded"),
        ('{"type":"session.updated","session":{"audio":{"input":{"format":"opus"}}}}', "opus"),
        ('{"type":"session.updated","session":{"tool_choice":"any"}}', "any"),
        ('{"type":"session.updated","session":{"tools":"all"}}', "array"),
        ('{"type":"session.updated","session":{"output_modalities":["video"]}}', "video"),
        (
            '{"type":"session.updated","session":{"audio":{"input":{"turn_detection":{"type":"x"}}}}}',
            "turn detection",
        ),
        ('{"type":"conversation.item.added","item":{"type":"message","role":"bot"}}', "bot"),
        ('{"type":"conversation.item.added","item":{"type":"message","role":"user"}}', "content"),
        ('{"type":"response.output_item.added","item":[1]}', "not an object"),
        ('{"type":"input_audio_buffer.speech_started","item_id":"i","audio_start_ms":1.5}', "int"),
    ],
)
def test_invalid_frames_raise_frame_decode_error(frame: str | bytes, reason: str) -> None:
    with pytest.raises(FrameDecodeError) as info:
        OpenAICodec().decode(frame)
    assert info.value.frame is frame
    assert reason in info.value.reason


def test_decode_message_rejects_non_objects_with_a_frame() -> None:
    with pytest.raises(FrameDecodeError) as info:
        OpenAICodec().decode_message([1, 2])  # type: ignore[arg-type]
    assert info.value.frame == "[1,2]"


def test_decode_message_errors_carry_the_message_as_json() -> None:
    message = {"type": "conversation.item.deleted"}
    with pytest.raises(FrameDecodeError) as info:
        OpenAICodec().decode_message(message)
    assert orjson.loads(info.value.frame) == message
    assert info.value.reason == "invalid 'conversation.item.deleted' event: missing field 'item_id'"


def test_unknown_fields_are_ignored() -> None:
    message = orjson.loads(AUDIO_DELTA)
    message["obfuscation"] = "aLxx0jTEciOGe"
    message["future"] = {"nested": [1]}
    assert OpenAICodec().decode_message(message) == AudioOutputDelta(
        "resp_t1_0001", "item_t1_asst01", SILENCE_1MS
    )


def test_bytes_frames_decode_like_text() -> None:
    codec = OpenAICodec()
    assert codec.decode(AUDIO_DELTA.encode()) == codec.decode(AUDIO_DELTA)
