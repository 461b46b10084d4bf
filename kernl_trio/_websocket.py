"""Where the WebSocket interface lived before :mod:`kernl_trio.transports`.

Modules inside the package that predate it import from here; new code imports
:mod:`kernl_trio.transports`.
"""

from .limits import CLOSE_TIMEOUT
from .transports import WebSocket, WebSocketClosed, WebSocketConnector, connect_trio_websocket
from .transports._trio_websocket import _TrioWebSocket

__all__ = [
    "CLOSE_TIMEOUT",
    "WebSocket",
    "WebSocketClosed",
    "WebSocketConnector",
    "_TrioWebSocket",
    "connect_trio_websocket",
]
