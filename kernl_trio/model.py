"""The contracts between a session and its model, connection, transport and channel.

These are the trio-native counterparts of kernl's ``RealtimeModel``, ``RealtimeConnection``
and ``RealtimeChannel`` and of the OpenAI Agents JS ``RealtimeTransportLayer``. Emitters
become memory channels: a connection's events are read from ``connection.events``; a
channel's input from ``channel.input``. See docs/concepts.md for the full mapping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, runtime_checkable

import attrs
import trio

from .limits import DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_MESSAGE_SIZE
from .protocol import (
    AudioFormat,
    ClientCredential,
    ClientEvent,
    ServerEvent,
    TransportStatus,
)


@attrs.frozen
class StatusChanged:
    """A connection moved from ``previous`` to ``status``."""

    kind = "status.changed"
    status: TransportStatus
    previous: TransportStatus


ConnectionEvent = ServerEvent | StatusChanged


@attrs.frozen
class ConnectOptions:
    """How to reach and authenticate with the model server.

    ``credential`` overrides the model's own key (e.g. an ephemeral token from
    ``authenticate()``); ``headers`` are added to the WebSocket upgrade request;
    ``connect_timeout`` bounds the handshake, in seconds of trio's clock.
    """

    credential: ClientCredential | None = None
    headers: tuple[tuple[str, str], ...] = ()
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE


@runtime_checkable
class RealtimeConnection(Protocol):
    """One live, two-way connection to a realtime model.

    ``events`` yields decoded server events and status changes; it ends when the connection
    closes, after which ``close_error`` says why (``None`` for a close the client asked for).
    """

    @property
    def status(self) -> TransportStatus: ...

    @property
    def muted(self) -> bool | None: ...

    @property
    def session_id(self) -> str | None: ...

    @property
    def provider_metadata(self) -> dict[str, Any]: ...

    @property
    def events(self) -> AsyncIterator[ConnectionEvent]:
        """Server events and status changes, in order, for one consumer (the session).

        Iterating it is what reads the socket: the consumer must keep iterating promptly.
        """
        ...

    async def receive_batch(self) -> Iterable[ConnectionEvent]:
        """Every event already received (at least one), in order, with one checkpoint.

        Raises ``trio.EndOfChannel`` once the connection has closed. The session's router
        reads the connection this way; ``events`` is the same stream, one event at a time.
        The batch may decode lazily, as the caller iterates it: events the caller leaves
        unread come first from the next call.
        """
        ...

    @property
    def close_error(self) -> BaseException | None: ...

    async def send(self, event: ClientEvent) -> None:
        """Queue one client event for the wire (in order; never cut mid-frame)."""
        ...

    def send_nowait(self, event: ClientEvent) -> None:
        """Queue one client event without a checkpoint (the interrupt path uses this)."""
        ...

    async def send_raw(self, message: dict[str, Any]) -> None:
        """Queue one provider-specific wire message as is."""
        ...

    def mute(self) -> None: ...

    def unmute(self) -> None: ...

    async def interrupt(self) -> None:
        """Cancel the response in progress, if any (``response.cancel``)."""
        ...

    async def aclose(self) -> None:
        """Close the connection gracefully (close handshake, bounded in time)."""
        ...


@runtime_checkable
class RealtimeModel(Protocol):
    """A realtime model on one provider: knows how to connect and mint credentials."""

    @property
    def provider(self) -> str: ...

    @property
    def model_id(self) -> str: ...

    @property
    def spec(self) -> str:
        """Version of the contract this model implements (``"1.0"``)."""
        ...

    def connect(
        self, options: ConnectOptions | None = None
    ) -> AbstractAsyncContextManager[RealtimeConnection]:
        """Open a connection; it lives exactly as long as the ``async with`` block."""
        ...

    async def authenticate(self) -> ClientCredential:
        """Mint a short-lived credential for a client that must not hold the API key."""
        ...


@runtime_checkable
class RealtimeTransport(Protocol):
    """Something other than the model's own WebSocket that carries the conversation
    (e.g. a phone bridge that talks to the model itself). ``handles_audio`` tells the session
    that audio flows outside it, so it neither plays nor forwards audio itself."""

    @property
    def handles_audio(self) -> bool: ...

    def connect(
        self, model: RealtimeModel, options: ConnectOptions | None = None
    ) -> AbstractAsyncContextManager[RealtimeConnection]: ...


@attrs.frozen
class ChannelAudio:
    """Microphone audio, in the channel's ``input_format``."""

    kind = "channel.audio"
    audio: bytes = attrs.field(repr=lambda a: f"<{len(a)} bytes>")


@attrs.frozen
class ChannelCommit:
    """The user finished a turn (push-to-talk release, end of an utterance)."""

    kind = "channel.commit"


@attrs.frozen
class ChannelInterrupt:
    """The channel detected barge-in itself (e.g. a local VAD or a keypad press)."""

    kind = "channel.interrupt"


ChannelInput = ChannelAudio | ChannelCommit | ChannelInterrupt


@runtime_checkable
class RealtimeChannel(Protocol):
    """Audio I/O at the user's end: a speaker that reports what was really heard, and a
    microphone (plus commit / interrupt signals) read from ``input``."""

    @property
    def input_format(self) -> AudioFormat: ...

    @property
    def output_format(self) -> AudioFormat: ...

    @property
    def input(self) -> trio.MemoryReceiveChannel[ChannelInput]: ...

    async def play(self, audio: bytes, *, item_id: str, content_index: int = 0) -> None:
        """Hand one chunk to the speaker. May block to pace or apply backpressure."""
        ...

    def played_ms(self, item_id: str) -> float:
        """Milliseconds of ``item_id`` the user has really heard so far."""
        ...

    def interrupt(self) -> None:
        """Stop playback now and flush everything queued (non-blocking)."""
        ...

    async def wait_drained(self) -> None:
        """Return once everything handed to ``play`` has been heard (or flushed)."""
        ...

    async def aclose(self) -> None: ...
