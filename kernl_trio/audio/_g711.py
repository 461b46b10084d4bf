"""G.711 (u-law, A-law) codecs from the stdlib ``audioop`` module.

``audioop`` is deprecated on Python 3.11 and 3.12 (PEP 594) and emits a
``DeprecationWarning`` when imported; it is imported here with that one warning
silenced. On 3.13+, where the stdlib module is gone, the ``audioop-lts`` package
provides the same module under the same name.

``audioop`` works on native-endian samples; kernl_trio's PCM16 is little-endian,
so these helpers assume a little-endian host (x86-64, arm64).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

from ..protocol.config import AudioEncoding

#: The byte that encodes a zero sample, per encoding.
SILENCE_BYTE: dict[AudioEncoding, int] = {
    AudioEncoding.PCM16: 0x00,
    AudioEncoding.PCMU: 0xFF,
    AudioEncoding.PCMA: 0xD5,
}


def ulaw_to_pcm16(data: bytes) -> bytes:
    return audioop.ulaw2lin(data, 2)


def alaw_to_pcm16(data: bytes) -> bytes:
    return audioop.alaw2lin(data, 2)


def pcm16_to_ulaw(data: bytes) -> bytes:
    return audioop.lin2ulaw(data, 2)


def pcm16_to_alaw(data: bytes) -> bytes:
    return audioop.lin2alaw(data, 2)


Codec = Callable[[bytes], bytes]

#: Decoder to PCM16 for each one-byte-per-sample encoding.
DECODERS: dict[AudioEncoding, Codec] = {
    AudioEncoding.PCMU: ulaw_to_pcm16,
    AudioEncoding.PCMA: alaw_to_pcm16,
}

#: Encoder from PCM16 for each one-byte-per-sample encoding.
ENCODERS: dict[AudioEncoding, Codec] = {
    AudioEncoding.PCMU: pcm16_to_ulaw,
    AudioEncoding.PCMA: pcm16_to_alaw,
}
