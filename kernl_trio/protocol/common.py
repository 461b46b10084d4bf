"""Shared vocabulary: statuses, usage, server errors and client credentials."""

from __future__ import annotations

import enum
from typing import Any

import attrs


class TransportStatus(enum.StrEnum):
    """Where a connection is in its life."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    DISCONNECTING = "disconnecting"
    CLOSED = "closed"


class ResponseStatus(enum.StrEnum):
    """Final (or current) state of one model response."""

    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    INCOMPLETE = "incomplete"


@attrs.frozen
class RealtimeError:
    """An error reported by the model server (or the codec), as data, not an exception.

    ``event_id`` names the client event that caused it, when the server says so.
    """

    message: str
    type: str = "error"
    code: str | None = None
    param: str | None = None
    event_id: str | None = None


@attrs.frozen
class Usage:
    """Token usage of one response. ``details`` keeps the provider's breakdown as sent."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    details: dict[str, Any] | None = None


@attrs.frozen
class ApiKey:
    """A long-lived secret (server side only)."""

    value: str = attrs.field(repr=False)


@attrs.frozen
class EphemeralToken:
    """A short-lived client secret minted by ``RealtimeModel.authenticate()``.

    ``expires_at`` is seconds since the Unix epoch, as the provider reports it.
    """

    value: str = attrs.field(repr=False)
    expires_at: float | None = None


ClientCredential = ApiKey | EphemeralToken
