"""Scripted replies: moved to :mod:`kernl_trio.local.replies`.

This module re-exports its names so existing imports keep working.
"""

from ..local.replies import (
    AudioReply,
    Reply,
    ReplyPart,
    Responder,
    ResponseRequest,
    TextReply,
    ToolCallReply,
    default_responder,
)

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
