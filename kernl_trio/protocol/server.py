"""The 25 server events (model -> application), provider-neutral, plus two catch-alls.

``ProviderEvent`` carries any provider event the neutral vocabulary does not model, raw, so
nothing is dropped silently; ``InvalidFrame`` reports a frame that could not be decoded.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from .common import RealtimeError, ResponseStatus, Usage
from .config import SessionConfig
from .items import Item


@attrs.frozen
class SessionInfo:
    """What the server says about the session: its id and effective config."""

    id: str | None
    config: SessionConfig
    model: str | None = None


@attrs.frozen
class _ServerEvent:
    kind: ClassVar[str]


@attrs.frozen
class SessionCreated(_ServerEvent):
    kind: ClassVar[str] = "session.created"
    session: SessionInfo


@attrs.frozen
class SessionUpdated(_ServerEvent):
    kind: ClassVar[str] = "session.updated"
    session: SessionInfo


@attrs.frozen
class SessionError(_ServerEvent):
    kind: ClassVar[str] = "session.error"
    error: RealtimeError


@attrs.frozen
class ItemCreated(_ServerEvent):
    kind: ClassVar[str] = "item.created"
    item: Item
    previous_item_id: str | None = None


@attrs.frozen
class ItemDeleted(_ServerEvent):
    kind: ClassVar[str] = "item.deleted"
    item_id: str


@attrs.frozen
class ItemTruncated(_ServerEvent):
    kind: ClassVar[str] = "item.truncated"
    item_id: str
    audio_end_ms: int
    content_index: int = 0


@attrs.frozen
class AudioInputCommitted(_ServerEvent):
    kind: ClassVar[str] = "audio.input.committed"
    item_id: str
    previous_item_id: str | None = None


@attrs.frozen
class AudioInputCleared(_ServerEvent):
    kind: ClassVar[str] = "audio.input.cleared"


@attrs.frozen
class SpeechStarted(_ServerEvent):
    kind: ClassVar[str] = "speech.started"
    item_id: str | None = None
    audio_start_ms: int = 0


@attrs.frozen
class SpeechStopped(_ServerEvent):
    kind: ClassVar[str] = "speech.stopped"
    item_id: str | None = None
    audio_end_ms: int = 0


@attrs.frozen
class AudioOutputDelta(_ServerEvent):
    kind: ClassVar[str] = "audio.output.delta"
    response_id: str
    item_id: str
    audio: bytes = attrs.field(repr=lambda a: f"<{len(a)} bytes>")
    content_index: int = 0


@attrs.frozen
class AudioOutputDone(_ServerEvent):
    kind: ClassVar[str] = "audio.output.done"
    response_id: str
    item_id: str
    content_index: int = 0


@attrs.frozen
class TextOutputDelta(_ServerEvent):
    kind: ClassVar[str] = "text.output.delta"
    response_id: str
    item_id: str
    delta: str
    content_index: int = 0


@attrs.frozen
class TextOutput(_ServerEvent):
    kind: ClassVar[str] = "text.output"
    response_id: str
    item_id: str
    text: str
    content_index: int = 0


@attrs.frozen
class TranscriptInputDelta(_ServerEvent):
    kind: ClassVar[str] = "transcript.input.delta"
    item_id: str
    delta: str
    content_index: int = 0


@attrs.frozen
class TranscriptInput(_ServerEvent):
    kind: ClassVar[str] = "transcript.input"
    item_id: str
    text: str
    content_index: int = 0


@attrs.frozen
class TranscriptOutputDelta(_ServerEvent):
    kind: ClassVar[str] = "transcript.output.delta"
    response_id: str
    item_id: str
    delta: str
    content_index: int = 0


@attrs.frozen
class TranscriptOutput(_ServerEvent):
    kind: ClassVar[str] = "transcript.output"
    response_id: str
    item_id: str
    text: str
    content_index: int = 0


@attrs.frozen
class ResponseCreated(_ServerEvent):
    kind: ClassVar[str] = "response.created"
    response_id: str


@attrs.frozen
class ResponseInterrupted(_ServerEvent):
    """One assistant turn was interrupted (emitted by the session, not by a codec).

    ``played_ms`` is the audio of ``item_id`` the user really heard (what the truncate
    carried, or ``None`` when nothing was truncated); ``cancelled_call_ids`` are the tool calls
    cancelled with the turn.
    """

    kind: ClassVar[str] = "response.interrupted"
    response_id: str | None
    item_id: str | None = None
    played_ms: int | None = None
    cancelled_call_ids: tuple[str, ...] = ()
    source: str = "client"


@attrs.frozen
class ResponseDone(_ServerEvent):
    kind: ClassVar[str] = "response.done"
    response_id: str
    status: ResponseStatus
    usage: Usage | None = None
    reason: str | None = None
    error: RealtimeError | None = None


@attrs.frozen
class ToolStart(_ServerEvent):
    kind: ClassVar[str] = "tool.start"
    call_id: str
    name: str
    response_id: str | None = None
    item_id: str | None = None


@attrs.frozen
class ToolDelta(_ServerEvent):
    kind: ClassVar[str] = "tool.delta"
    call_id: str
    delta: str
    response_id: str | None = None
    item_id: str | None = None


@attrs.frozen
class ToolCall(_ServerEvent):
    """The model asks for a tool call; ``arguments`` is the JSON string as sent."""

    kind: ClassVar[str] = "tool.call"
    call_id: str
    name: str
    arguments: str
    response_id: str | None = None
    item_id: str | None = None


@attrs.frozen
class ToolCancelled(_ServerEvent):
    """A tool call was cancelled (by an interruption, a timeout or the session ending)."""

    kind: ClassVar[str] = "tool.cancelled"
    call_id: str
    name: str | None = None
    response_id: str | None = None
    reason: str = "interrupted"


@attrs.frozen
class ProviderEvent(_ServerEvent):
    """A provider event with no neutral counterpart, with its payload as received.

    ``known`` is False for types the codec has never heard of (forward compatibility).
    """

    kind: ClassVar[str] = "provider"
    type: str
    raw: dict[str, Any] = attrs.field(repr=False)
    known: bool = True


@attrs.frozen
class InvalidFrame(_ServerEvent):
    """A frame the codec could not decode; ``frame`` is exactly what arrived."""

    kind: ClassVar[str] = "invalid_frame"
    frame: str | bytes = attrs.field(repr=False)
    reason: str


ServerEvent = (
    SessionCreated
    | SessionUpdated
    | SessionError
    | ItemCreated
    | ItemDeleted
    | ItemTruncated
    | AudioInputCommitted
    | AudioInputCleared
    | SpeechStarted
    | SpeechStopped
    | AudioOutputDelta
    | AudioOutputDone
    | TextOutputDelta
    | TextOutput
    | TranscriptInputDelta
    | TranscriptInput
    | TranscriptOutputDelta
    | TranscriptOutput
    | ResponseCreated
    | ResponseInterrupted
    | ResponseDone
    | ToolStart
    | ToolDelta
    | ToolCall
    | ToolCancelled
    | ProviderEvent
    | InvalidFrame
)

NEUTRAL_SERVER_EVENT_TYPES: tuple[type[ServerEvent], ...] = (
    SessionCreated,
    SessionUpdated,
    SessionError,
    ItemCreated,
    ItemDeleted,
    ItemTruncated,
    AudioInputCommitted,
    AudioInputCleared,
    SpeechStarted,
    SpeechStopped,
    AudioOutputDelta,
    AudioOutputDone,
    TextOutputDelta,
    TextOutput,
    TranscriptInputDelta,
    TranscriptInput,
    TranscriptOutputDelta,
    TranscriptOutput,
    ResponseCreated,
    ResponseInterrupted,
    ResponseDone,
    ToolStart,
    ToolDelta,
    ToolCall,
    ToolCancelled,
)
