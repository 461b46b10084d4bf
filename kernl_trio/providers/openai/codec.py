"""The OpenAI Realtime GA codec: neutral client events -> wire dicts, wire frames -> events.

One cattrs converter (:data:`converter`, built in ``_wire``, ``_wire_config`` and
``_wire_events``) does the work in both directions; this module holds the tables that route
each GA event type to its structure hook and the per-connection :class:`OpenAICodec`.

Every one of the 46 GA server event types is either mapped to a neutral event or returned as
``ProviderEvent(type, raw, known=True)``; the beta names of the output deltas decode too.
Anything else becomes ``ProviderEvent(type, raw, known=False)``. A frame that cannot be
decoded raises :class:`~kernl_trio.errors.FrameDecodeError` carrying the frame, and nothing
else escapes :meth:`OpenAICodec.decode`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import orjson

from kernl_trio.errors import EncodeError, FrameDecodeError
from kernl_trio.limits import MAX_AUDIO_APPEND_BYTES
from kernl_trio.protocol.client import ActivityEnd, ActivityStart, AudioInputAppend, ClientEvent
from kernl_trio.protocol.items import ToolCallItem
from kernl_trio.protocol.server import (
    AudioInputCleared,
    AudioInputCommitted,
    AudioOutputDelta,
    AudioOutputDone,
    ItemCreated,
    ItemDeleted,
    ItemTruncated,
    ProviderEvent,
    ResponseCreated,
    ResponseDone,
    ServerEvent,
    SessionCreated,
    SessionError,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    TextOutput,
    TextOutputDelta,
    ToolCall,
    ToolDelta,
    ToolStart,
    TranscriptInput,
    TranscriptInputDelta,
    TranscriptOutput,
    TranscriptOutputDelta,
)

from ._wire import converter, json_type_name, structure_str
from ._wire_events import CLIENT_WIRE_TYPES

__all__ = [
    "BETA_SERVER_EVENTS",
    "GA_SERVER_EVENTS",
    "PROVIDER_ONLY_SERVER_EVENTS",
    "OpenAICodec",
    "converter",
]

GA_SERVER_EVENTS: dict[str, type[Any]] = {
    "session.created": SessionCreated,
    "session.updated": SessionUpdated,
    "error": SessionError,
    "conversation.item.added": ItemCreated,
    "conversation.item.created": ItemCreated,
    "conversation.item.deleted": ItemDeleted,
    "conversation.item.truncated": ItemTruncated,
    "input_audio_buffer.committed": AudioInputCommitted,
    "input_audio_buffer.cleared": AudioInputCleared,
    "input_audio_buffer.speech_started": SpeechStarted,
    "input_audio_buffer.speech_stopped": SpeechStopped,
    "response.output_audio.delta": AudioOutputDelta,
    "response.output_audio.done": AudioOutputDone,
    "response.output_text.delta": TextOutputDelta,
    "response.output_text.done": TextOutput,
    "response.output_audio_transcript.delta": TranscriptOutputDelta,
    "response.output_audio_transcript.done": TranscriptOutput,
    "conversation.item.input_audio_transcription.delta": TranscriptInputDelta,
    "conversation.item.input_audio_transcription.completed": TranscriptInput,
    "response.created": ResponseCreated,
    "response.done": ResponseDone,
    "response.output_item.added": ToolStart,  # function_call items only; others: provider
    "response.function_call_arguments.delta": ToolDelta,
    "response.function_call_arguments.done": ToolCall,
}
"""GA server event types with a neutral counterpart."""

BETA_SERVER_EVENTS: dict[str, type[Any]] = {
    "response.audio.delta": AudioOutputDelta,
    "response.audio.done": AudioOutputDone,
    "response.audio_transcript.delta": TranscriptOutputDelta,
    "response.audio_transcript.done": TranscriptOutput,
    "response.text.delta": TextOutputDelta,
    "response.text.done": TextOutput,
}
"""Beta names of the same events (old servers, proxies, Azure previews)."""

PROVIDER_ONLY_SERVER_EVENTS: frozenset[str] = frozenset(
    [
        "conversation.created",
        "conversation.item.done",
        "conversation.item.retrieved",
        "conversation.item.input_audio_transcription.failed",
        "conversation.item.input_audio_transcription.segment",
        "input_audio_buffer.dtmf_event_received",
        "input_audio_buffer.timeout_triggered",
        "rate_limits.updated",
        "response.content_part.added",
        "response.content_part.done",
        "response.output_item.done",
        "output_audio_buffer.started",
        "output_audio_buffer.stopped",
        "output_audio_buffer.cleared",
        "mcp_list_tools.in_progress",
        "mcp_list_tools.completed",
        "mcp_list_tools.failed",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.in_progress",
        "response.mcp_call.completed",
        "response.mcp_call.failed",
    ]
)
"""GA server event types with no neutral counterpart: ``ProviderEvent(known=True)``."""

_Decoder = tuple[Callable[[Any, Any], Any], Any]

# Fetched once: the per-frame path is one dict lookup and one call of a generated hook.
_DECODERS: dict[str, _Decoder] = {
    wire_type: (converter.get_structure_hook(cls), cls)
    for wire_type, cls in (GA_SERVER_EVENTS | BETA_SERVER_EVENTS).items()
}
_ENCODERS: dict[type[Any], Callable[[Any], dict[str, Any]]] = {
    cls: converter.get_unstructure_hook(cls) for cls in CLIENT_WIRE_TYPES
}
_NO_COUNTERPART = (ActivityStart, ActivityEnd)  # OpenAI has no activity markers
_structure_tool_call_item = converter.get_structure_hook(ToolCallItem)
_structure_item_created = converter.get_structure_hook(ItemCreated)
_structure_tool_call = converter.get_structure_hook(ToolCall)

_MAX_REMEMBERED_CALLS = 256

MAX_APPEND_AUDIO = MAX_AUDIO_APPEND_BYTES // 4 * 3 // 6 * 6
"""The most audio bytes one append carries: base64 within the limit, a whole number of
samples for PCM16 and G.711 alike (a multiple of 6 = 3 base64 bytes x 2 sample bytes)."""


def _split_append(event: AudioInputAppend) -> list[AudioInputAppend]:
    audio = event.audio
    parts = range(0, len(audio), MAX_APPEND_AUDIO)
    return [
        attrs.evolve(
            event,
            audio=audio[start : start + MAX_APPEND_AUDIO],
            event_id=None if event.event_id is None else f"{event.event_id}-{n}",
        )
        for n, start in enumerate(parts)
    ]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}" if exc.args else "missing field"
    text = str(exc)
    if text and type(exc) in (TypeError, ValueError):  # the wire hooks' own messages
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _frame_of(message: object) -> str:
    try:
        return orjson.dumps(message).decode()
    except (TypeError, ValueError):
        return repr(message)


class OpenAICodec:
    """Per-connection codec (small state: call_id -> tool name, for servers that omit `name`).

    ``decode`` raises :class:`FrameDecodeError` and nothing else; ``encode`` raises
    :class:`EncodeError` for an event this wire cannot express (e.g. PCM16 at 16 kHz).
    """

    def __init__(self) -> None:
        self._tool_names: dict[str, str] = {}
        self._decoders: dict[str, _Decoder] = {
            **_DECODERS,
            "conversation.item.added": (self._item_created, ItemCreated),
            "conversation.item.created": (self._item_created, ItemCreated),
            "response.output_item.added": (self._output_item_added, None),
            "response.function_call_arguments.done": (self._tool_call, ToolCall),
        }

    # --- encoding -------------------------------------------------------------------------

    def encode(self, event: ClientEvent) -> list[dict[str, Any]]:
        """GA wire dicts for ``event``; ``[]`` when OpenAI has no counterpart (activity).

        An :class:`AudioInputAppend` over what one ``input_audio_buffer.append`` may carry
        (:data:`~kernl_trio.limits.MAX_AUDIO_APPEND_BYTES` of base64) becomes several
        appends, in order, each a whole number of samples."""
        if isinstance(event, _NO_COUNTERPART):
            return []
        hook = _ENCODERS.get(event.__class__)
        if hook is None:
            raise EncodeError(f"not a client event: {event!r:.80}")
        try:
            if isinstance(event, AudioInputAppend) and len(event.audio) > MAX_APPEND_AUDIO:
                return [hook(part) for part in _split_append(event)]
            return [hook(event)]
        except EncodeError:
            raise
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            raise EncodeError(f"cannot encode {event.kind}: {_reason(exc)}") from exc

    def encode_frames(self, event: ClientEvent) -> list[str]:
        """The same as :meth:`encode`, as JSON text frames (``str``)."""
        try:
            return [orjson.dumps(wire).decode() for wire in self.encode(event)]
        except orjson.JSONEncodeError as exc:
            raise EncodeError(f"cannot encode {event.kind} as JSON: {exc}") from exc

    def encode_wire(self, event: ClientEvent) -> list[bytes]:
        """The same as :meth:`encode`, as JSON frames in UTF-8 ``bytes``: what a
        :class:`~kernl_trio.transports.WebSocket` sends as text without a decode."""
        try:
            return [orjson.dumps(wire) for wire in self.encode(event)]
        except orjson.JSONEncodeError as exc:
            raise EncodeError(f"cannot encode {event.kind} as JSON: {exc}") from exc

    # --- decoding -------------------------------------------------------------------------

    def decode(self, frame: str | bytes) -> ServerEvent:
        """One text (or bytes) frame -> one event; raises FrameDecodeError, nothing else."""
        try:
            message = orjson.loads(frame)
        except (orjson.JSONDecodeError, TypeError) as exc:
            raise FrameDecodeError(f"not JSON: {exc}", frame) from None
        return self._structure(message, frame)

    def decode_message(self, message: dict[str, Any]) -> ServerEvent:
        """The same as :meth:`decode`, for an already-parsed JSON object."""
        return self._structure(message, None)

    def _structure(self, message: object, frame: str | bytes | None) -> ServerEvent:
        """A parsed frame -> one event; errors carry ``frame`` (or ``message`` re-encoded)."""
        if not isinstance(message, dict):
            raise FrameDecodeError(
                f"not a JSON object but {json_type_name(message)}",
                _frame_of(message) if frame is None else frame,
            )
        # The hot path (every audio delta): one lookup and one generated hook.
        wire_type = message.get("type")
        decoder = self._decoders.get(wire_type) if isinstance(wire_type, str) else None
        if decoder is None:
            return self._not_mapped(message, frame)
        hook, cls = decoder
        try:
            event: ServerEvent = hook(message, cls)
        except Exception as exc:  # cattrs and hook errors alike: the boundary of decode()
            raise FrameDecodeError(
                f"invalid {wire_type!r} event: {_reason(exc)}",
                _frame_of(message) if frame is None else frame,
            ) from exc
        return event

    def _not_mapped(self, message: dict[str, Any], frame: str | bytes | None) -> ProviderEvent:
        """A type with no neutral counterpart, or no string type at all."""
        wire_type = message.get("type")
        if not isinstance(wire_type, str):
            reason = "no 'type'" if wire_type is None else "'type' is not a string"
            raise FrameDecodeError(reason, _frame_of(message) if frame is None else frame)
        known = wire_type in PROVIDER_ONLY_SERVER_EVENTS
        return ProviderEvent(type=wire_type, raw=message, known=known)

    # --- stateful decoders: remember call_id -> name for function_arguments.done ----------

    def _remember(self, call_id: str, name: str) -> None:
        names = self._tool_names
        names[call_id] = name
        if len(names) > _MAX_REMEMBERED_CALLS:
            del names[next(iter(names))]

    def _item_created(self, message: dict[str, Any], cls: Any) -> ItemCreated:
        event: ItemCreated = _structure_item_created(message, cls)
        if isinstance(event.item, ToolCallItem):
            self._remember(event.item.call_id, event.item.name)
        return event

    def _output_item_added(self, message: dict[str, Any], _: Any) -> ToolStart | ProviderEvent:
        item = message["item"]
        if not isinstance(item, dict):
            raise TypeError(f"'item' is not an object but {json_type_name(item)}")
        if structure_str(item["type"]) != "function_call":
            return ProviderEvent(type=message["type"], raw=message)
        call: ToolCallItem = _structure_tool_call_item(item, ToolCallItem)
        response_id = message.get("response_id")
        self._remember(call.call_id, call.name)
        return ToolStart(
            call_id=call.call_id,
            name=call.name,
            response_id=None if response_id is None else structure_str(response_id),
            item_id=call.id,
        )

    def _tool_call(self, message: dict[str, Any], cls: Any) -> ToolCall:
        call_id = structure_str(message["call_id"])
        if message.get("name") is None:
            name = self._tool_names.get(call_id)
            if name is None:
                raise ValueError(f"no tool name for call {call_id!r}, and none announced")
            message = {**message, "name": name}
        event: ToolCall = _structure_tool_call(message, cls)
        self._tool_names.pop(call_id, None)
        return event
