"""kernl_trio: realtime voice agents on trio's structured concurrency."""

from .errors import (
    ConfigurationError,
    ConnectionClosed,
    ConnectionLost,
    EncodeError,
    FrameDecodeError,
    HandshakeFailed,
    KernlTrioError,
)

__all__ = [
    "ConfigurationError",
    "ConnectionClosed",
    "ConnectionLost",
    "EncodeError",
    "FrameDecodeError",
    "HandshakeFailed",
    "KernlTrioError",
]
