"""Audio formats for realtime voice: G.711 transcoding, resampling, silence, energy.

Phone legs speak G.711 at 8 kHz (Twilio: u-law, 160 bytes per 20 ms); realtime
models speak PCM16 at 24 kHz or G.711. :class:`Transcoder` bridges the two per
stream; when both sides use the same format it passes audio through untouched.
G.711 comes from the stdlib ``audioop`` (``audioop-lts`` on Python 3.13+),
resampling from ``soxr``.
"""

from ._signals import bytes_for_ms, duration_ms, pcm16_silence, rms_dbfs, silence, tone
from ._transcoder import Transcoder, TranscoderStatistics

__all__ = [
    "Transcoder",
    "TranscoderStatistics",
    "bytes_for_ms",
    "duration_ms",
    "pcm16_silence",
    "rms_dbfs",
    "silence",
    "tone",
]
