"""kernl_trio: realtime voice agents on trio's structured concurrency.

Open a session as a nursery-scoped async context manager; events flow through bounded
memory channels; an interruption cancels the assistant turn's scope, so playback stops and
its tool calls are cancelled at once, and the model is told how much audio was heard.
"""

# Names load on first use (PEP 562), so importing a submodule (the pytest plugin, the command
# line) does not import the whole library.
from typing import TYPE_CHECKING, Any

from ._lazy import load

if TYPE_CHECKING:
    from .agent import RealtimeAgent
    from .context import Context
    from .errors import (
        ConfigurationError,
        ConnectionClosed,
        ConnectionLost,
        EncodeError,
        FrameDecodeError,
        HandshakeFailed,
        KernlTrioError,
        TransportError,
    )
    from .model import (
        ChannelAudio,
        ChannelCommit,
        ChannelInput,
        ChannelInterrupt,
        ConnectOptions,
        RealtimeChannel,
        RealtimeConnection,
        RealtimeModel,
        RealtimeTransport,
        StatusChanged,
    )
    from .session import RealtimeSession, SessionEvent, ToolOutput, open_session
    from .tools import Tool, ToolArgumentsError, ToolError, Toolkit, tool

_EXPORTS = {
    "ChannelAudio": ".model",
    "ChannelCommit": ".model",
    "ChannelInput": ".model",
    "ChannelInterrupt": ".model",
    "ConfigurationError": ".errors",
    "ConnectOptions": ".model",
    "ConnectionClosed": ".errors",
    "ConnectionLost": ".errors",
    "Context": ".context",
    "EncodeError": ".errors",
    "FrameDecodeError": ".errors",
    "HandshakeFailed": ".errors",
    "KernlTrioError": ".errors",
    "RealtimeAgent": ".agent",
    "RealtimeChannel": ".model",
    "RealtimeConnection": ".model",
    "RealtimeModel": ".model",
    "RealtimeSession": ".session",
    "RealtimeTransport": ".model",
    "SessionEvent": ".session",
    "StatusChanged": ".model",
    "Tool": ".tools",
    "ToolArgumentsError": ".tools",
    "ToolError": ".tools",
    "ToolOutput": ".session",
    "Toolkit": ".tools",
    "TransportError": ".errors",
    "open_session": ".session",
    "tool": ".tools",
}


def __getattr__(name: str) -> Any:
    return load(__name__, _EXPORTS, name, globals())


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = [
    "ChannelAudio",
    "ChannelCommit",
    "ChannelInput",
    "ChannelInterrupt",
    "ConfigurationError",
    "ConnectOptions",
    "ConnectionClosed",
    "ConnectionLost",
    "Context",
    "EncodeError",
    "FrameDecodeError",
    "HandshakeFailed",
    "KernlTrioError",
    "RealtimeAgent",
    "RealtimeChannel",
    "RealtimeConnection",
    "RealtimeModel",
    "RealtimeSession",
    "RealtimeTransport",
    "SessionEvent",
    "StatusChanged",
    "Tool",
    "ToolArgumentsError",
    "ToolError",
    "ToolOutput",
    "Toolkit",
    "TransportError",
    "open_session",
    "tool",
]
