"""What a scripted server says when asked for a response."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs


@attrs.frozen
class AudioReply:
    """An assistant message spoken as audio with its transcript.

    ``audio`` is the exact PCM16/G.711 payload in the session's output format; without it the
    server synthesizes ``ms`` milliseconds of a quiet tone.
    """

    transcript: str
    ms: int = 1000
    audio: bytes | None = attrs.field(default=None, repr=False)


@attrs.frozen
class TextReply:
    """An assistant message as text only."""

    text: str


@attrs.frozen
class ToolCallReply:
    """A function call; ``arguments`` is sent as the JSON string given."""

    name: str
    arguments: str = "{}"
    call_id: str | None = None


ReplyPart = AudioReply | TextReply | ToolCallReply


@attrs.frozen
class Reply:
    """One response: its output items in order, streamed ``chunk_ms`` of audio per delta.

    With ``realtime`` the audio deltas are paced at one chunk per ``chunk_ms`` of trio time;
    otherwise they go out as fast as the socket takes them (like the real API).
    """

    parts: tuple[ReplyPart, ...]
    chunk_ms: int = 20
    realtime: bool = False

    @classmethod
    def of(cls, *parts: ReplyPart, chunk_ms: int = 20, realtime: bool = False) -> Reply:
        return cls(tuple(parts), chunk_ms, realtime)


@attrs.frozen
class ResponseRequest:
    """What the responder sees: the response.create event and the conversation so far."""

    event: dict[str, Any]
    conversation: Sequence[dict[str, Any]]
    session: dict[str, Any]

    def last_user_text(self) -> str:
        """The text (or transcript) of the last user message, or ""."""
        for item in reversed(self.conversation):
            if item.get("type") == "message" and item.get("role") == "user":
                for part in item.get("content", []):
                    text = part.get("text") or part.get("transcript")
                    if text:
                        return str(text)
                return ""
        return ""

    def tool_outputs(self) -> list[dict[str, Any]]:
        """The function_call_output items after the last user message."""
        outputs: list[dict[str, Any]] = []
        for item in reversed(self.conversation):
            if item.get("type") == "message" and item.get("role") == "user":
                break
            if item.get("type") == "function_call_output":
                outputs.insert(0, item)
        return outputs


Responder = Callable[[ResponseRequest], Reply]


def default_responder(request: ResponseRequest) -> Reply:
    """Answer every request with one second of audio that echoes the user's words."""
    text = request.last_user_text() or "Hello."
    return Reply.of(AudioReply(f"You said: {text}", ms=1000))


__all__ = [
    "AudioReply",
    "Reply",
    "ReplyPart",
    "Responder",
    "ResponseRequest",
    "TextReply",
    "ToolCallReply",
    "default_responder",
]
