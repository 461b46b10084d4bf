"""The harness for testing voice agents: a scripted realtime server and a virtual channel.

Run tests under pytest-trio's ``autojump_clock`` and a ten-minute call plays in milliseconds,
deterministically; every position is exact in trio's virtual time. The servers live in
:mod:`kernl_trio.local` (the product uses them too); their names are here as well.
"""

# Names load on first use (PEP 562): the pytest plugin in this package is imported by every
# pytest run where kernl_trio is installed, and must cost nothing there.
from typing import TYPE_CHECKING, Any

from .._lazy import load

if TYPE_CHECKING:
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

_EXPORTS = {
    "AudioReply": "..local.replies",
    "PeerMark": ".twilio_peer",
    "PlayedChunk": "..channels.virtual",
    "Reply": "..local.replies",
    "Responder": "..local.replies",
    "ResponseRequest": "..local.replies",
    "ScriptedServer": "..local.server",
    "ServerConnection": "..local.server",
    "TextReply": "..local.replies",
    "ToolCallReply": "..local.replies",
    "TwilioPeer": ".twilio_peer",
    "VirtualChannel": "..channels.virtual",
    "default_responder": "..local.replies",
}


def __getattr__(name: str) -> Any:
    return load(__name__, _EXPORTS, name, globals())


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


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
