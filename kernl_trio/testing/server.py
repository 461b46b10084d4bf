"""The scripted realtime server: moved to :mod:`kernl_trio.local.server`.

This module re-exports its names so existing imports keep working.
"""

from ..local.server import (
    DEFAULT_SESSION,
    ScriptedServer,
    ServerConnection,
    bytes_per_ms,
    synthesize,
)

__all__ = [
    "DEFAULT_SESSION",
    "ScriptedServer",
    "ServerConnection",
    "bytes_per_ms",
    "synthesize",
]
