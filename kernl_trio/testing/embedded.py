"""The embedded realtime server: moved to :mod:`kernl_trio.local.embedded`.

This module re-exports its names so existing imports keep working.
"""

from ..local.embedded import (
    EmbeddedConnection,
    EmbeddedServer,
    Transcriber,
)

__all__ = [
    "EmbeddedConnection",
    "EmbeddedServer",
    "Transcriber",
]
