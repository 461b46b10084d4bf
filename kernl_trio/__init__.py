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
    from ._fanout import SubscriberStatistics, Subscription
    from ._playback import AssumedPlayback
    from .agent import RealtimeAgent
    from .context import Context
    from .errors import (
        CallAlreadyAnswered,
        ConfigurationError,
        ConnectionClosed,
        ConnectionLost,
        EncodeError,
        FrameDecodeError,
        HandshakeFailed,
        KernlTrioError,
        MultipleErrors,
        SessionRejected,
        SubscriberOverflow,
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
    from .session import (
        RealtimeSession,
        SessionEvent,
        SessionStatistics,
        ToolOutput,
        open_session,
    )
    from .tools import Tool, ToolArgumentsError, ToolError, Toolkit, tool

_EXPORTS = {
    "AssumedPlayback": "._playback",
    "CallAlreadyAnswered": ".errors",
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
    "MultipleErrors": ".errors",
    "RealtimeAgent": ".agent",
    "RealtimeChannel": ".model",
    "RealtimeConnection": ".model",
    "RealtimeModel": ".model",
    "RealtimeSession": ".session",
    "RealtimeTransport": ".model",
    "SessionEvent": ".session",
    "SessionRejected": ".errors",
    "SessionStatistics": ".session",
    "StatusChanged": ".model",
    "SubscriberOverflow": ".errors",
    "SubscriberStatistics": "._fanout",
    "Subscription": "._fanout",
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
    "AssumedPlayback",
    "CallAlreadyAnswered",
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
    "MultipleErrors",
    "RealtimeAgent",
    "RealtimeChannel",
    "RealtimeConnection",
    "RealtimeModel",
    "RealtimeSession",
    "RealtimeTransport",
    "SessionEvent",
    "SessionRejected",
    "SessionStatistics",
    "StatusChanged",
    "SubscriberOverflow",
    "SubscriberStatistics",
    "Subscription",
    "Tool",
    "ToolArgumentsError",
    "ToolError",
    "ToolOutput",
    "Toolkit",
    "TransportError",
    "open_session",
    "tool",
]
