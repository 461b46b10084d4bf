"""Properties of the OpenAI GA codec (hypothesis).

``decode`` returns a ServerEvent or raises FrameDecodeError for *any* input; unknown fields
never make a valid frame invalid; neutral values survive the trip through the wire; and every
client event the codec can produce validates against the official ``openai`` models.
"""

from __future__ import annotations

import binascii
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernl_trio.errors import FrameDecodeError
from kernl_trio.protocol import (
    PCM16_24K,
    PCMA_8K,
    PCMU_8K,
    AudioInputAppend,
    AudioInputClear,
    AudioInputCommit,
    AudioOutputDelta,
    ClientEvent,
    FunctionTool,
    InputAudio,
    InputText,
    Item,
    ItemCreate,
    ItemCreated,
    ItemDelete,
    ItemTruncate,
    ManualTurns,
    MessageItem,
    OutputAudio,
    OutputText,
    ProviderEvent,
    ResponseCancel,
    ResponseConfig,
    ResponseCreate,
    SemanticVAD,
    ServerEvent,
    ServerVAD,
    SessionConfig,
    SessionUpdate,
    SessionUpdated,
    ToolCallItem,
    ToolChoiceFunction,
    ToolResult,
    ToolResultItem,
    Transcription,
)
from kernl_trio.providers.openai.codec import GA_SERVER_EVENTS, OpenAICodec

from .openai_models import assert_no_extras, client_adapter

# max_examples comes from the profile (tests/conftest.py): quick by default, thorough in CI
PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

DATA = Path(__file__).parent / "data" / "openai_ga_transcripts.txt"
SERVER_FRAMES = [
    line[3:] for line in DATA.read_text(encoding="utf-8").splitlines() if line.startswith("s> ")
]


def decode_or_error(frame: str | bytes) -> ServerEvent | FrameDecodeError:
    """Decode with a fresh codec; the only exception allowed out is FrameDecodeError."""
    try:
        return OpenAICodec().decode(frame)
    except FrameDecodeError as exc:
        assert exc.frame is frame
        assert exc.reason
        return exc


# --- arbitrary input never escapes as anything but FrameDecodeError ------------------------

int64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)
json_scalars = (
    st.none() | st.booleans() | int64 | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)
wire_types = st.sampled_from(sorted(GA_SERVER_EVENTS)) | st.text(max_size=30)
json_objects = st.dictionaries(
    st.sampled_from(
        ["type", "event_id", "response_id", "item_id", "delta", "item", "response", "session"]
    )
    | st.text(max_size=12),
    json_values,
)


@PROPERTY
@given(st.binary())
def test_arbitrary_bytes(frame: bytes) -> None:
    decode_or_error(frame)


@PROPERTY
@given(st.text())
def test_arbitrary_text(frame: str) -> None:
    decode_or_error(frame)


@PROPERTY
@given(wire_types, json_objects)
def test_arbitrary_objects_of_any_type(wire_type: str, message: dict[str, Any]) -> None:
    message["type"] = wire_type
    decode_or_error(orjson.dumps(message).decode())
    try:
        OpenAICodec().decode_message(message)
    except FrameDecodeError as exc:
        assert orjson.loads(exc.frame) == message


# --- mutations of valid transcript frames -------------------------------------------------


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key/index path inside a JSON value (the root excluded)."""
    found = []
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return []
    for key, child in items:
        found.append((*path, key))
        found.extend(_paths(child, (*path, key)))
    return found


def _parent(message: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        message = message[key]
    return message


def _objects(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every JSON object inside ``value``, the root included."""
    found = [path] if isinstance(value, dict) else []
    children: Any = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, child in children:
        found.extend(_objects(child, (*path, key)))
    return found


@PROPERTY
@given(st.sampled_from(SERVER_FRAMES), st.data())
def test_dropping_a_key_or_element(frame: str, data: st.DataObject) -> None:
    message = orjson.loads(frame)
    path = data.draw(st.sampled_from(_paths(message)))
    del _parent(message, path)[path[-1]]
    decode_or_error(orjson.dumps(message))


@PROPERTY
@given(st.sampled_from(SERVER_FRAMES), st.data(), json_values)
def test_changing_a_value(frame: str, data: st.DataObject, value: Any) -> None:
    message = orjson.loads(frame)
    path = data.draw(st.sampled_from(_paths(message)))
    _parent(message, path)[path[-1]] = value
    decode_or_error(orjson.dumps(message).decode())


@PROPERTY
@given(st.sampled_from(SERVER_FRAMES), st.data(), st.text(max_size=8), json_values)
def test_unknown_keys_never_make_a_valid_frame_invalid(
    frame: str, data: st.DataObject, key: str, value: Any
) -> None:
    message = orjson.loads(frame)
    original = OpenAICodec().decode(frame)
    path = data.draw(st.sampled_from(_objects(message)))
    target = message
    for k in path:
        target = target[k]
    target["x_unknown_" + key] = value
    mutated = OpenAICodec().decode(orjson.dumps(message))
    assert type(mutated) is type(original)
    if path == () and not isinstance(original, ProviderEvent):
        assert mutated == original


# --- neutral values survive the wire ------------------------------------------------------

ids = st.text(min_size=1, max_size=16)
texts = st.text(max_size=40)
small_ints = st.integers(min_value=0, max_value=100_000)
floats = st.floats(min_value=0, max_value=10, allow_nan=False)
event_ids = st.none() | ids
statuses = st.none() | st.sampled_from(["completed", "incomplete", "in_progress"])

tools = st.builds(
    FunctionTool,
    name=ids,
    description=texts,
    parameters=st.fixed_dictionaries(
        {"type": st.just("object"), "properties": st.dictionaries(ids, st.just({}), max_size=3)}
    ),
)
tool_choices = st.sampled_from(["auto", "none", "required"]) | st.builds(ToolChoiceFunction, ids)
modalities = st.sampled_from([("audio",), ("text",)])
turn_detections = (
    st.just(ManualTurns())
    | st.builds(
        ServerVAD,
        threshold=st.none() | st.floats(0, 1),
        prefix_padding_ms=st.none() | small_ints,
        silence_duration_ms=st.none() | small_ints,
        idle_timeout_ms=st.none() | st.integers(5000, 30000),
        create_response=st.none() | st.booleans(),
        interrupt_response=st.none() | st.booleans(),
    )
    | st.builds(
        SemanticVAD,
        eagerness=st.none() | st.sampled_from(["low", "medium", "high", "auto"]),
        create_response=st.none() | st.booleans(),
        interrupt_response=st.none() | st.booleans(),
    )
)
session_configs = st.builds(
    SessionConfig,
    instructions=st.none() | texts,
    tools=st.none() | st.lists(tools, max_size=3).map(tuple),
    tool_choice=st.none() | tool_choices,
    modalities=st.none() | modalities,
    voice=st.none() | st.sampled_from(["alloy", "marin", "cedar"]),
    input_format=st.none() | st.sampled_from([PCM16_24K, PCMU_8K, PCMA_8K]),
    output_format=st.none() | st.sampled_from([PCM16_24K, PCMU_8K, PCMA_8K]),
    turn_detection=st.none() | turn_detections,
    transcription=st.none()
    | st.builds(
        Transcription,
        model=st.sampled_from(["whisper-1", "gpt-4o-mini-transcribe"]),
        language=st.none() | st.sampled_from(["en", "fr"]),
        prompt=st.none() | texts,
    ),
    speed=st.none() | st.floats(0.25, 1.5),
    max_output_tokens=st.none() | st.integers(1, 4096) | st.just("inf"),
)

user_parts = st.builds(InputText, texts) | st.builds(
    InputAudio, audio=st.none() | st.binary(max_size=64), transcript=st.none() | texts
)
assistant_parts = st.builds(OutputText, texts) | st.builds(
    OutputAudio, transcript=st.none() | texts
)
# Role-consistent items: what GA accepts in conversation.item.create.
client_items: st.SearchStrategy[Item] = st.one_of(
    st.builds(
        MessageItem,
        role=st.just("user"),
        content=st.lists(user_parts, max_size=3).map(tuple),
        id=st.none() | ids,
        status=statuses,
    ),
    st.builds(
        MessageItem,
        role=st.just("system"),
        content=st.lists(st.builds(InputText, texts), max_size=2).map(tuple),
        id=st.none() | ids,
        status=statuses,
    ),
    st.builds(
        MessageItem,
        role=st.just("assistant"),
        content=st.lists(assistant_parts, max_size=2).map(tuple),
        id=st.none() | ids,
        status=statuses,
    ),
    st.builds(ToolCallItem, ids, ids, texts, id=st.none() | ids, status=statuses),
    st.builds(ToolResultItem, ids, texts, id=st.none() | ids, status=statuses),
)
response_configs = st.builds(
    ResponseConfig,
    instructions=st.none() | texts,
    modalities=st.none() | modalities,
    tool_choice=st.none() | tool_choices,
    metadata=st.none() | st.dictionaries(ids, texts, max_size=3),
    conversation=st.none() | st.sampled_from(["auto", "none"]),
    max_output_tokens=st.none() | st.integers(1, 4096) | st.just("inf"),
)
client_events: st.SearchStrategy[ClientEvent] = st.one_of(
    st.builds(SessionUpdate, session_configs, event_id=event_ids),
    st.builds(ItemCreate, client_items, previous_item_id=st.none() | ids, event_id=event_ids),
    st.builds(ItemDelete, ids, event_id=event_ids),
    st.builds(
        ItemTruncate, ids, audio_end_ms=small_ints, content_index=small_ints, event_id=event_ids
    ),
    st.builds(AudioInputAppend, st.binary(max_size=2048), event_id=event_ids),
    st.builds(AudioInputCommit, event_id=event_ids),
    st.builds(AudioInputClear, event_id=event_ids),
    st.builds(ResponseCreate, st.none() | response_configs, event_id=event_ids),
    st.builds(ResponseCancel, st.none() | ids, event_id=event_ids),
    st.builds(ToolResult, ids, texts, error=st.booleans(), event_id=event_ids),
)


@PROPERTY
@given(client_events)
def test_every_client_event_validates_against_openai(event: ClientEvent) -> None:
    for frame in OpenAICodec().encode_frames(event):
        wire = orjson.loads(frame)
        model = client_adapter().validate_python(wire)
        assert_no_extras(model)
        assert model.model_dump(mode="json", exclude_unset=True) == wire


@PROPERTY
@given(session_configs, ids)
def test_session_config_round_trips_through_session_updated(
    config: SessionConfig, session_id: str
) -> None:
    (update,) = OpenAICodec().encode(SessionUpdate(config))
    session = {**update["session"], "id": session_id}
    echoed = {"type": "session.updated", "event_id": "e", "session": session}
    event = OpenAICodec().decode(orjson.dumps(echoed))
    assert isinstance(event, SessionUpdated)
    assert event.session.id == session_id
    assert event.session.config == config


@PROPERTY
@given(client_items)
def test_items_round_trip_through_item_added(item: Item) -> None:
    (create,) = OpenAICodec().encode(ItemCreate(item))
    added = {"type": "conversation.item.added", "event_id": "e", "item": create["item"]}
    assert OpenAICodec().decode(orjson.dumps(added)) == ItemCreated(item)


@PROPERTY
@given(st.binary(max_size=4096))
def test_audio_bytes_survive_base64_both_ways(audio: bytes) -> None:
    (append,) = OpenAICodec().encode(AudioInputAppend(audio))
    assert binascii.a2b_base64(append["audio"], strict_mode=True) == audio
    delta = {
        "type": "response.output_audio.delta",
        "event_id": "e",
        "response_id": "r",
        "item_id": "i",
        "output_index": 0,
        "content_index": 0,
        "delta": append["audio"],
    }
    assert OpenAICodec().decode(orjson.dumps(delta)) == AudioOutputDelta("r", "i", audio)
