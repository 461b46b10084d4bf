"""Every timeout and size limit of the library, in one place.

Times are seconds of trio's clock (a ``MockClock`` controls them all). Values a user may
need to change per connection are fields of :class:`kernl_trio.model.ConnectOptions`
(``connect_timeout``, ``max_message_size``); their defaults are the ``DEFAULT_`` constants
here. The rest are the library's own bounds on a misbehaving peer.
"""

from __future__ import annotations

__all__ = [
    "CLOSE_TIMEOUT",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "HANDSHAKE_BODY_CHARS",
    "HTTP_TIMEOUT",
    "MAX_AUDIO_APPEND_BYTES",
    "PING_INTERVAL",
    "PING_TIMEOUT",
    "RECEIVE_BYTES",
    "RECEIVE_QUEUE",
    "SEND_QUEUE",
    "SEND_STALL_TIMEOUT",
    "WATCHDOG_TICK",
]

DEFAULT_CONNECT_TIMEOUT = 10.0
"""Opening the WebSocket (TCP, TLS, upgrade), and waiting for the first server event."""

DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
"""The largest incoming message accepted; a larger one closes the socket with code 1009."""

CLOSE_TIMEOUT = 5.0
"""The close handshake: after this the socket is closed without the peer's close frame."""

SEND_STALL_TIMEOUT = 10.0
"""A write the peer takes nothing of for this long ends the connection."""

SEND_QUEUE = 64
"""Frames ``await connection.send()`` leaves queued behind a write in progress. Past this it
waits for the writer to catch up, so a socket that takes nothing holds back the sender (the
session's microphone queue then fills and drops, ``MICROPHONE_BACKLOG``) instead of queueing
without limit. Frames queued without a checkpoint (``send_nowait``) are not held back."""

PING_INTERVAL = 20.0
"""A peer silent this long is pinged (the sans-I/O connector)."""

PING_TIMEOUT = 20.0
"""... and one that then sends nothing for this long is given up on."""

WATCHDOG_TICK = 2.5
"""How often the sans-I/O connector's watchdog compares progress: its figures are this
coarse, and it adds one tick to every limit so each stays a lower bound."""

HTTP_TIMEOUT = 10.0
"""A plain HTTPS request (minting an ephemeral client secret)."""

RECEIVE_BYTES = 65536
"""The largest single read from the socket."""

RECEIVE_QUEUE = 64
"""Messages trio-websocket buffers before its reader stops reading the socket."""

HANDSHAKE_BODY_CHARS = 512
"""How much of a refused upgrade's response body :class:`~kernl_trio.errors.HandshakeFailed`
keeps (OpenAI explains a 401 there)."""

MAX_AUDIO_APPEND_BYTES = 15 * 1024 * 1024
"""The largest base64 ``audio`` field of one ``input_audio_buffer.append`` the OpenAI
Realtime API accepts (docs/protocol.md); larger chunks are split into several appends."""
