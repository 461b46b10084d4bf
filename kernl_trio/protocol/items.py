"""Conversation items and their content parts.

Audio is always ``bytes`` in kernl_trio (see docs/protocol.md): codecs decode base64 once at
the wire boundary and never again.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

import attrs

ItemStatus = Literal["completed", "incomplete", "in_progress"]
Role = Literal["user", "assistant", "system"]


@attrs.frozen
class InputText:
    text: str


@attrs.frozen
class InputAudio:
    audio: bytes | None = attrs.field(default=None, repr=False)
    transcript: str | None = None


@attrs.frozen
class OutputText:
    text: str


@attrs.frozen
class OutputAudio:
    transcript: str | None = None
    audio: bytes | None = attrs.field(default=None, repr=False)


@attrs.frozen
class InputImage:
    """An image the user shows the model: an ``https:`` or ``data:`` URL."""

    image_url: str = attrs.field(repr=lambda url: f"<{len(url)} chars>")
    detail: Literal["auto", "low", "high"] | None = None

    @classmethod
    def from_bytes(cls, data: bytes, mime_type: str = "image/png") -> InputImage:
        """An image from its encoded bytes (PNG, JPEG, ...), as a ``data:`` URL."""
        return cls(f"data:{mime_type};base64,{base64.b64encode(data).decode()}")


ContentPart = InputText | InputAudio | InputImage | OutputText | OutputAudio


@attrs.frozen
class MessageItem:
    role: Role
    content: tuple[ContentPart, ...]
    id: str | None = None
    status: ItemStatus | None = None


@attrs.frozen
class ToolCallItem:
    call_id: str
    name: str
    arguments: str
    id: str | None = None
    status: ItemStatus | None = None


@attrs.frozen
class ToolResultItem:
    call_id: str
    output: str
    id: str | None = None
    status: ItemStatus | None = None


@attrs.frozen
class ProviderItem:
    """An item type the neutral vocabulary does not model (e.g. MCP calls), kept raw."""

    type: str
    raw: dict[str, Any]
    id: str | None = None


Item = MessageItem | ToolCallItem | ToolResultItem | ProviderItem


def user_text(text: str) -> MessageItem:
    """A user message holding one text part."""
    return MessageItem(role="user", content=(InputText(text),))
