"""The embedded server's turn detection: moved to :mod:`kernl_trio.local.vad`.

This module re-exports its names so existing imports keep working.
"""

from ..local.vad import (
    FRAME_MS,
    EnergyVAD,
    SpeechStart,
    SpeechStop,
    VadEvent,
    VadSettings,
    threshold_to_dbfs,
)

__all__ = [
    "FRAME_MS",
    "EnergyVAD",
    "SpeechStart",
    "SpeechStop",
    "VadEvent",
    "VadSettings",
    "threshold_to_dbfs",
]
