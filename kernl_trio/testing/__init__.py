"""The harness for testing voice agents: a scripted realtime server and a virtual channel.

Run tests under pytest-trio's ``autojump_clock`` and a ten-minute call plays in milliseconds,
deterministically; every position is exact in trio's virtual time.
"""

from ..channels.virtual import PlayedChunk, VirtualChannel
from ..local.replies import (
    AudioReply,
    Reply,
    Responder,
    ResponseRequest,
    TextReply,
    ToolCallReply,
    default_responder,
)
from ..local.server import ScriptedServer, ServerConnection
from .twilio_peer import PeerMark, TwilioPeer

__all__ = [
    "AudioReply",
    "PeerMark",
    "PlayedChunk",
    "Reply",
    "Responder",
    "ResponseRequest",
    "ScriptedServer",
    "ServerConnection",
    "TextReply",
    "ToolCallReply",
    "TwilioPeer",
    "VirtualChannel",
    "default_responder",
]
