"""The 12 client events (application -> model), provider-neutral.

Each class names its neutral ``kind``; providers' codecs map kinds to wire types. Every event
takes an optional keyword ``event_id`` that servers echo back in errors it causes.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from .config import ResponseConfig, SessionConfig
from .items import Item


@attrs.frozen
class _ClientEvent:
    kind: ClassVar[str]
    event_id: str | None = attrs.field(default=None, kw_only=True)


@attrs.frozen
class SessionUpdate(_ClientEvent):
    kind: ClassVar[str] = "session.update"
    config: SessionConfig


@attrs.frozen
class ItemCreate(_ClientEvent):
    """Add ``item`` to the conversation; ``extra`` adds fields to the wire event as is."""

    kind: ClassVar[str] = "item.create"
    item: Item
    previous_item_id: str | None = None
    extra: dict[str, Any] | None = attrs.field(default=None, kw_only=True)


@attrs.frozen
class ItemDelete(_ClientEvent):
    kind: ClassVar[str] = "item.delete"
    item_id: str


@attrs.frozen
class ItemTruncate(_ClientEvent):
    """Cut an assistant item's audio to what the user actually heard."""

    kind: ClassVar[str] = "item.truncate"
    item_id: str
    audio_end_ms: int
    content_index: int = 0


@attrs.frozen
class AudioInputAppend(_ClientEvent):
    kind: ClassVar[str] = "audio.input.append"
    audio: bytes = attrs.field(repr=lambda a: f"<{len(a)} bytes>")


@attrs.frozen
class AudioInputCommit(_ClientEvent):
    kind: ClassVar[str] = "audio.input.commit"


@attrs.frozen
class AudioInputClear(_ClientEvent):
    kind: ClassVar[str] = "audio.input.clear"


@attrs.frozen
class ActivityStart(_ClientEvent):
    """Manual turn-taking: the user started speaking (providers without it send nothing)."""

    kind: ClassVar[str] = "activity.start"


@attrs.frozen
class ActivityEnd(_ClientEvent):
    """Manual turn-taking: the user stopped speaking (providers without it send nothing)."""

    kind: ClassVar[str] = "activity.end"


@attrs.frozen
class ResponseCreate(_ClientEvent):
    kind: ClassVar[str] = "response.create"
    config: ResponseConfig | None = None


@attrs.frozen
class ResponseCancel(_ClientEvent):
    kind: ClassVar[str] = "response.cancel"
    response_id: str | None = None


@attrs.frozen
class ToolResult(_ClientEvent):
    """The output of one tool call; ``error`` marks ``output`` as an error message."""

    kind: ClassVar[str] = "tool.result"
    call_id: str
    output: str
    error: bool = False


ClientEvent = (
    SessionUpdate
    | ItemCreate
    | ItemDelete
    | ItemTruncate
    | AudioInputAppend
    | AudioInputCommit
    | AudioInputClear
    | ActivityStart
    | ActivityEnd
    | ResponseCreate
    | ResponseCancel
    | ToolResult
)

CLIENT_EVENT_TYPES: tuple[type[ClientEvent], ...] = (
    SessionUpdate,
    ItemCreate,
    ItemDelete,
    ItemTruncate,
    AudioInputAppend,
    AudioInputCommit,
    AudioInputClear,
    ActivityStart,
    ActivityEnd,
    ResponseCreate,
    ResponseCancel,
    ToolResult,
)
