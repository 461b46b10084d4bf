"""WebSocket transports: the interface a connection is written against, and its connectors.

A connector opens one WebSocket: ``connector(url, headers, max_message_size,
connect_timeout)`` is an async context manager yielding a :class:`WebSocket`. Pass one as
``OpenAIRealtimeModel(connector=...)``:

* :func:`connect_websockets_sansio` (the default, :data:`DEFAULT_CONNECTOR`):
  ``websockets``' sans-I/O protocol driven by the connection's own tasks; the least CPU per
  event and per idle session (docs/performance.md);
* :func:`connect_trio_websocket`: trio-websocket (wsproto and h11).

Both keep one contract, tested on both: a failed opening handshake (refused upgrade,
DNS or TCP error, a bad ``Sec-WebSocket-Accept``, a server that hangs up, a timeout) raises
:class:`~kernl_trio.errors.HandshakeFailed` at once, with the status and the start of the
body when the server answered; once open, ``send``, ``receive`` and ``receive_batch`` raise
:class:`WebSocketClosed` when the socket closes (1009, the reason naming the limit, for an
incoming message over ``max_message_size``); secret header values (:class:`Secret`) are
revealed only on the wire and never logged.
"""

from .._secret import Secret
from ._base import Header, WebSocket, WebSocketClosed, WebSocketConnector
from ._sansio import connect_websockets_sansio
from ._trio_websocket import connect_trio_websocket

DEFAULT_CONNECTOR: WebSocketConnector = connect_websockets_sansio
"""The connector ``OpenAIRealtimeModel`` uses unless given another."""

__all__ = [
    "DEFAULT_CONNECTOR",
    "Header",
    "Secret",
    "WebSocket",
    "WebSocketClosed",
    "WebSocketConnector",
    "connect_trio_websocket",
    "connect_websockets_sansio",
]
