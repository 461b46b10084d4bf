"""The exceptions kernl_trio raises. Every one derives from :class:`KernlTrioError`.

Errors that leave a session are single exceptions of these types, never groups of the
library's internal tasks' failures.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "ConnectionClosed",
    "ConnectionLost",
    "EncodeError",
    "FrameDecodeError",
    "HandshakeFailed",
    "KernlTrioError",
    "MultipleErrors",
    "TransportError",
]


class KernlTrioError(Exception):
    """Base of every kernl_trio exception."""


class ConfigurationError(KernlTrioError):
    """The agent, model or session was set up wrongly (e.g. two tools with one name)."""


class FrameDecodeError(KernlTrioError):
    """A wire frame could not be decoded; ``frame`` is exactly what arrived."""

    def __init__(self, reason: str, frame: str | bytes) -> None:
        super().__init__(reason)
        self.reason = reason
        self.frame = frame


class EncodeError(KernlTrioError):
    """A client event cannot be expressed on this provider's wire."""


class TransportError(KernlTrioError):
    """Base of connection failures."""


class HandshakeFailed(TransportError):
    """The WebSocket (or HTTP upgrade) to the model server could not be established.

    When the server answered the upgrade with another status, ``status_code`` is it and
    ``body`` is the first part of the response body (OpenAI explains a 401 there).
    """

    def __init__(
        self, message: str, *, status_code: int | None = None, body: str | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


class ConnectionLost(TransportError):
    """An established connection ended without the client asking it to."""

    def __init__(self, message: str, *, code: int | None = None, reason: str | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason


class ConnectionClosed(TransportError):
    """An operation was attempted on a connection that is already closed."""


class CallAlreadyAnswered(KernlTrioError):
    """A tool call already has its output; a second one would confuse the model."""


class SubscriberOverflow(KernlTrioError):
    """A subscriber fell further behind than its ``max_backlog``: it was detached.

    Raised from the subscriber's own iteration, after it has read every event it was
    given; ``delivered`` says how many that was. The session and other subscribers go on.
    """

    def __init__(self, message: str, *, delivered: int, max_backlog: int) -> None:
        super().__init__(message)
        self.delivered = delivered
        self.max_backlog = max_backlog


class SessionRejected(ConfigurationError):
    """The server refused the session's first configuration (``error`` says why)."""

    def __init__(self, message: str, *, error: object) -> None:
        super().__init__(message)
        self.error = error


class MultipleErrors(KernlTrioError):
    """More than one unrelated error ended a session at once; ``__cause__`` holds them all."""
