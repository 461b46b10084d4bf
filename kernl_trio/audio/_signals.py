"""Sizes, silence, test tones and energy of audio buffers."""

from __future__ import annotations

import math

import numpy as np

from ..protocol.config import AudioEncoding, AudioFormat
from ._g711 import ENCODERS, SILENCE_BYTE


def duration_ms(fmt: AudioFormat, nbytes: int) -> float:
    """Milliseconds of audio in ``nbytes`` bytes of ``fmt``."""
    return fmt.duration_ms(nbytes)


def bytes_for_ms(fmt: AudioFormat, ms: float) -> int:
    """Bytes of ``ms`` milliseconds of ``fmt``, rounded to the nearest whole sample."""
    if ms < 0:
        raise ValueError(f"negative duration: {ms} ms")
    return round(ms * fmt.rate / 1000) * fmt.sample_width


def silence(fmt: AudioFormat, ms: float) -> bytes:
    """``ms`` milliseconds of digital silence in ``fmt``.

    The zero sample is 0x00 0x00 in PCM16, 0xFF in u-law and 0xD5 in A-law.
    """
    return bytes([SILENCE_BYTE[fmt.encoding]]) * bytes_for_ms(fmt, ms)


def pcm16_silence(ms: float, rate: int = 24000) -> bytes:
    """``ms`` milliseconds of PCM16 silence at ``rate`` Hz."""
    return silence(AudioFormat(AudioEncoding.PCM16, rate), ms)


def tone(fmt: AudioFormat, hz: float, ms: float, amplitude: float = 0.5) -> bytes:
    """A sine of ``hz`` Hz lasting ``ms`` milliseconds in ``fmt``, starting at phase 0.

    ``amplitude`` is the peak as a fraction of full scale, in [0, 1].
    """
    if not 0 <= amplitude <= 1:
        raise ValueError(f"amplitude must be in [0, 1], not {amplitude}")
    n = bytes_for_ms(AudioFormat(AudioEncoding.PCM16, fmt.rate), ms) // 2
    t = np.arange(n, dtype=np.float64) / fmt.rate
    samples = np.rint(np.sin(2 * np.pi * hz * t) * (amplitude * 32767)).astype("<i2")
    pcm = samples.tobytes()
    encode = ENCODERS.get(fmt.encoding)
    return encode(pcm) if encode is not None else pcm


def rms_dbfs(pcm16: bytes) -> float:
    """Energy of PCM16 audio: RMS level in dB relative to full scale.

    A full-scale square wave is 0 dBFS, a full-scale sine about -3.01 dBFS.
    Digital silence, and an empty buffer, are ``-inf``.
    """
    if len(pcm16) & 1:
        raise ValueError(f"PCM16 audio has whole 2-byte samples, got {len(pcm16)} bytes")
    if not pcm16:
        return -math.inf
    x = np.frombuffer(pcm16, dtype="<i2").astype(np.float64)
    mean_square = float(np.dot(x, x)) / len(x)
    if mean_square == 0:
        return -math.inf
    return 10 * math.log10(mean_square / (32768.0 * 32768.0))
