"""Stateful streaming conversion between two audio formats."""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import soxr  # type: ignore[import-untyped]

from ..protocol.config import AudioEncoding, AudioFormat
from ._g711 import DECODERS, ENCODERS, Codec

_NO_SAMPLES = np.zeros(0, dtype=np.float32)


@attrs.frozen
class TranscoderStatistics:
    """Counters of a :class:`Transcoder`.

    ``bytes_in`` and ``bytes_out`` count since creation. ``buffered_ms`` is the
    audio of the current stream that went in and has not come out yet: the
    resampler's delay (plus half a sample while an odd PCM16 byte is carried).
    ``flush()`` brings it back to about 0; ``reset()`` drops it.
    """

    bytes_in: int
    bytes_out: int
    buffered_ms: float


class Transcoder:
    """Converts one audio stream from ``src`` to ``dst``, chunk by chunk.

    Use one transcoder per stream and direction: the resampler keeps state
    between chunks, so a chunk's output depends on the chunks before it.

    If ``src == dst`` every chunk passes through as the same object, untouched.
    Otherwise a chunk is decoded to PCM16 (G.711 via ``audioop``), resampled if
    the rates differ (``soxr.ResampleStream``), and encoded to ``dst``. A PCM16
    chunk of odd length keeps its last byte for the next call. The output is
    deterministic: the same input in the same chunks gives the same bytes.

    The resampler holds some audio back. With ``low_latency=True`` (the default,
    libsoxr's variable-rate engine) each input chunk yields the same duration of
    output after a fixed delay of about 25-30 ms. With ``low_latency=False``
    (soxr "HQ", linear phase) output comes in blocks of about 60 ms and up to
    about 75 ms is held back with 20 ms chunks. Both pass 0-3.4 kHz flat and
    reject aliases by more than 100 dB; docs/performance.md has the figures.
    Call :meth:`flush` at the end of a stream (or of a model response) to get
    the held-back tail.
    """

    def __init__(self, src: AudioFormat, dst: AudioFormat, *, low_latency: bool = True) -> None:
        self._src = src
        self._dst = dst
        self._low_latency = low_latency
        self._identity = src == dst
        self._decode: Codec | None = DECODERS.get(src.encoding)
        self._encode: Codec | None = ENCODERS.get(dst.encoding)
        self._pcm16_in = src.encoding is AudioEncoding.PCM16
        self._resampler: soxr.ResampleStream | None = None
        if not self._identity and src.rate != dst.rate:
            if low_latency:
                # vr=True selects libsoxr's variable-rate engine (SOXR_VR); the rate
                # ratio stays fixed here, only its steady low-delay output is wanted.
                # It ignores the quality setting.
                self._resampler = soxr.ResampleStream(
                    src.rate, dst.rate, 1, dtype="float32", vr=True
                )
            else:
                self._resampler = soxr.ResampleStream(
                    src.rate, dst.rate, 1, dtype="float32", quality="HQ"
                )
        self._carry = b""
        self._bytes_in = 0
        self._bytes_out = 0
        self._stream_in = 0  # bytes of the current stream, for buffered_ms
        self._stream_out = 0

    @property
    def src(self) -> AudioFormat:
        return self._src

    @property
    def dst(self) -> AudioFormat:
        return self._dst

    @property
    def low_latency(self) -> bool:
        return self._low_latency

    def convert(self, chunk: bytes) -> bytes:
        """The ``dst`` audio for ``chunk`` of ``src`` audio (possibly empty)."""
        n = len(chunk)
        self._bytes_in += n
        if self._identity:
            self._bytes_out += n
            return chunk
        self._stream_in += n
        if self._pcm16_in:
            if self._carry:
                chunk = self._carry + chunk
                self._carry = b""
            if len(chunk) & 1:
                self._carry = chunk[-1:]
                chunk = chunk[:-1]
            pcm = chunk
        else:
            assert self._decode is not None
            pcm = self._decode(chunk)
        if self._resampler is not None and pcm:
            samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32)
            pcm = _to_pcm16(self._resampler.resample_chunk(samples))
        return self._finish(pcm)

    def flush(self) -> bytes:
        """The held-back tail of the current stream; then start a new stream.

        A PCM16 byte still carried (half a sample) is dropped. The transcoder
        stays usable: the next chunk starts a new stream, with no history.
        """
        if self._identity:
            return b""
        pcm = b""
        if self._resampler is not None:
            pcm = _to_pcm16(self._resampler.resample_chunk(_NO_SAMPLES, last=True))
        out = self._finish(pcm)
        self._restart()
        return out

    def reset(self) -> None:
        """Drop the held-back audio (e.g. on barge-in) and start a new stream."""
        if not self._identity:
            self._restart()

    def statistics(self) -> TranscoderStatistics:
        held = self._src.duration_ms(self._stream_in) - self._dst.duration_ms(self._stream_out)
        return TranscoderStatistics(self._bytes_in, self._bytes_out, max(held, 0.0))

    def __repr__(self) -> str:
        return f"Transcoder({self._src!r}, {self._dst!r}, low_latency={self._low_latency})"

    def _finish(self, pcm: bytes) -> bytes:
        out = self._encode(pcm) if self._encode is not None else pcm
        self._bytes_out += len(out)
        self._stream_out += len(out)
        return out

    def _restart(self) -> None:
        if self._resampler is not None:
            self._resampler.clear()
        self._carry = b""
        self._stream_in = 0
        self._stream_out = 0


def _to_pcm16(samples: np.ndarray[Any, np.dtype[np.float32]]) -> bytes:
    # soxr resamples through float32 here, not int16: python-soxr's int16 output
    # gets libsoxr's default TPDF dither, randomly seeded per resampler, which
    # makes the output differ from run to run and turns digital silence into
    # +-1 LSB noise. Rounding and saturating ourselves keeps silence silent.
    np.rint(samples, out=samples)
    np.clip(samples, -32768, 32767, out=samples)
    return samples.astype(np.int16).tobytes()
