"""kernl_trio: realtime voice agents on trio's structured concurrency.

Open a session as a nursery-scoped async context manager; events flow through bounded
memory channels; an interruption cancels the assistant turn's scope, so playback stops and
its tool calls are cancelled at once, and the model is told how much audio was heard.
"""

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
from .session import RealtimeSession, SessionEvent, SessionStatistics, ToolOutput, open_session
from .tools import Tool, ToolArgumentsError, ToolError, Toolkit, tool

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
