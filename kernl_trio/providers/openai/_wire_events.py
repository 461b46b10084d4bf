"""Event hooks on the OpenAI GA converter: server events in, client events out.

Where a neutral event's fields line up with the GA event's, its structure hook is cattrs'
generated one (with ``rename`` overrides where only the name differs: ``delta`` -> ``audio``,
``transcript`` -> ``text``). ``response.done`` nests what the neutral event keeps flat and is
written by hand. Client events unstructure to complete wire dicts, ``type`` first; unset
(``None``) fields are omitted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from cattrs.gen import (
    make_dict_structure_fn,
    make_dict_structure_fn_from_attrs,
    make_dict_unstructure_fn,
    override,
)

from kernl_trio.protocol.client import (
    AudioInputAppend,
    AudioInputClear,
    AudioInputCommit,
    ItemCreate,
    ItemDelete,
    ItemTruncate,
    ResponseCancel,
    ResponseCreate,
    SessionUpdate,
    ToolResult,
)
from kernl_trio.protocol.common import RealtimeError, ResponseStatus, Usage
from kernl_trio.protocol.server import (
    AudioInputCleared,
    AudioInputCommitted,
    AudioOutputDelta,
    AudioOutputDone,
    ItemCreated,
    ItemDeleted,
    ItemTruncated,
    ResponseCreated,
    ResponseDone,
    SessionCreated,
    SessionError,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    TextOutput,
    TextOutputDelta,
    ToolCall,
    ToolDelta,
    TranscriptInput,
    TranscriptInputDelta,
    TranscriptOutput,
    TranscriptOutputDelta,
)

from . import _wire_config  # noqa: F401  (registers the config hooks the events below use)
from ._wire import converter, json_object, structure_int, structure_str

__all__ = ["CLIENT_WIRE_TYPES"]


# --- server events ------------------------------------------------------------------------

_TRANSCRIPT = override(rename="transcript")

_GENERATED: dict[type[Any], dict[str, Any]] = {
    SessionCreated: {},
    SessionUpdated: {},
    SessionError: {},
    ItemCreated: {},
    ItemDeleted: {},
    ItemTruncated: {},
    AudioInputCommitted: {},
    AudioInputCleared: {},
    SpeechStarted: {},
    SpeechStopped: {},
    AudioOutputDelta: {"audio": override(rename="delta")},
    AudioOutputDone: {},
    TextOutputDelta: {},
    TextOutput: {},
    TranscriptInputDelta: {},
    TranscriptInput: {"text": _TRANSCRIPT},
    TranscriptOutputDelta: {},
    TranscriptOutput: {"text": _TRANSCRIPT},
    ToolDelta: {},
    ToolCall: {},
}
for _cls, _overrides in _GENERATED.items():
    converter.register_structure_hook(_cls, make_dict_structure_fn(_cls, converter, **_overrides))


def _content_index_fast_path(cls: type[Any], **overrides: Any) -> None:
    """Register a hook that is quickest when ``content_index`` is sent, as GA always does.

    cattrs passes fields with a default as ``**kwargs`` built key by key; the streaming deltas
    are the hot path, so a second hook is generated from the same attrs fields with
    ``content_index`` required (a plain positional argument) and used whenever it is present.
    """
    fields = [
        a.evolve(default=attrs.NOTHING) if a.name == "content_index" else a
        for a in attrs.fields(cls)
    ]
    present = make_dict_structure_fn_from_attrs(fields, cls, converter, **overrides)
    absent = converter.get_structure_hook(cls)

    def structure_delta(message: dict[str, Any], cls: Any = cls) -> Any:
        if "content_index" in message:
            return present(message, cls)
        return absent(message, cls)

    converter.register_structure_hook(cls, structure_delta)


for _cls in (AudioOutputDelta, TranscriptOutputDelta, TextOutputDelta):
    _content_index_fast_path(_cls, **_GENERATED[_cls])


def _response_id(value: Any, _: Any) -> str:
    return structure_str(json_object(value)["id"])


# ``response.created`` carries the whole response object; only its id is kept.
converter.register_structure_hook(
    ResponseCreated,
    make_dict_structure_fn(
        ResponseCreated,
        converter,
        response_id=override(rename="response", struct_hook=_response_id),
    ),
)

_transcript_input_delta = converter.get_structure_hook(TranscriptInputDelta)


def _structure_transcript_input_delta(
    message: dict[str, Any], cls: Any = TranscriptInputDelta
) -> TranscriptInputDelta:
    # ``delta`` is optional in GA's conversation.item.input_audio_transcription.delta.
    if "delta" not in message:
        message = {**message, "delta": ""}
    event: TranscriptInputDelta = _transcript_input_delta(message, cls)
    return event


converter.register_structure_hook(TranscriptInputDelta, _structure_transcript_input_delta)

_USAGE_TOTALS = ("input_tokens", "output_tokens", "total_tokens")


def structure_usage(value: Any, _: Any = Usage) -> Usage:
    """GA usage; ``details`` keeps the breakdown (``input_token_details``, ...) as sent."""
    usage = json_object(value)
    details = {k: v for k, v in usage.items() if k not in _USAGE_TOTALS}
    return Usage(
        input_tokens=structure_int(usage.get("input_tokens", 0)),
        output_tokens=structure_int(usage.get("output_tokens", 0)),
        total_tokens=structure_int(usage.get("total_tokens", 0)),
        details=details or None,
    )


converter.register_structure_hook(Usage, structure_usage)
_structure_status = converter.get_structure_hook(ResponseStatus)


def _status_error(value: Any) -> RealtimeError | None:
    if value is None:
        return None
    error = json_object(value)
    kind = error.get("type")
    code = error.get("code")
    message = error.get("message")
    return RealtimeError(
        message=structure_str(message if message is not None else code or kind or ""),
        type=structure_str(kind if kind is not None else "error"),
        code=None if code is None else structure_str(code),
    )


def structure_response_done(message: dict[str, Any], _: Any = ResponseDone) -> ResponseDone:
    response = json_object(message["response"])
    details = response.get("status_details")
    details = {} if details is None else json_object(details)
    reason = details.get("reason")
    usage = response.get("usage")
    return ResponseDone(
        response_id=structure_str(response["id"]),
        status=_structure_status(response["status"], ResponseStatus),
        usage=None if usage is None else structure_usage(usage),
        reason=None if reason is None else structure_str(reason),
        error=_status_error(details.get("error")),
    )


converter.register_structure_hook(ResponseDone, structure_response_done)


# --- client events ------------------------------------------------------------------------

CLIENT_WIRE_TYPES: dict[type[Any], str] = {
    SessionUpdate: "session.update",
    ItemCreate: "conversation.item.create",
    ItemDelete: "conversation.item.delete",
    ItemTruncate: "conversation.item.truncate",
    AudioInputAppend: "input_audio_buffer.append",
    AudioInputCommit: "input_audio_buffer.commit",
    AudioInputClear: "input_audio_buffer.clear",
    ResponseCreate: "response.create",
    ResponseCancel: "response.cancel",
    ToolResult: "conversation.item.create",
}
"""GA wire type of each client event that has one (ActivityStart/End have none)."""

_CLIENT_OVERRIDES: dict[type[Any], dict[str, Any]] = {
    SessionUpdate: {"config": override(rename="session")},
    ItemCreate: {"extra": override(omit=True)},
    ItemTruncate: {"content_index": override(omit_if_default=False)},  # required on the wire
    ResponseCreate: {"config": override(rename="response")},
    ToolResult: {
        "call_id": override(omit=True),
        "output": override(omit=True),
        "error": override(omit=True),  # GA function_call_output has no error flag
    },
}


def _typed(wire_type: str, fields: Callable[[Any], dict[str, Any]]) -> Callable[[Any], Any]:
    def unstructure_event(event: Any) -> dict[str, Any]:
        wire = {"type": wire_type}
        wire.update(fields(event))
        return wire

    return unstructure_event


for _cls, _wire_type in CLIENT_WIRE_TYPES.items():
    converter.register_unstructure_hook(
        _cls,
        _typed(
            _wire_type,
            make_dict_unstructure_fn(
                _cls, converter, _cattrs_omit_if_default=True, **_CLIENT_OVERRIDES.get(_cls, {})
            ),
        ),
    )

_tool_result_fields = converter.get_unstructure_hook(ToolResult)


def unstructure_tool_result(event: ToolResult) -> dict[str, Any]:
    """A tool result is a ``function_call_output`` item created in the conversation."""
    wire: dict[str, Any] = _tool_result_fields(event)
    wire["item"] = {
        "type": "function_call_output",
        "call_id": event.call_id,
        "output": event.output,
    }
    return wire


converter.register_unstructure_hook(ToolResult, unstructure_tool_result)

_item_create_fields = converter.get_unstructure_hook(ItemCreate)


def unstructure_item_create(event: ItemCreate) -> dict[str, Any]:
    """``extra`` fields join the event; they never replace its type or its item."""
    wire: dict[str, Any] = _item_create_fields(event)
    for key, value in (event.extra or {}).items():
        wire.setdefault(key, value)
    return wire


converter.register_unstructure_hook(ItemCreate, unstructure_item_create)
