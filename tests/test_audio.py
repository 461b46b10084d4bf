"""kernl_trio.audio: G.711 transcoding, resampling, silence, tones and energy.

Resampled lengths. soxr (libsoxr) trims its filter delay at the start of a stream
and, once told the input has ended (``flush()``), emits the rest. What it
guarantees is the total: ``n`` input samples give ``n * dst_rate / src_rate``
output samples, rounded to the nearest by the HQ engine and to within one sample
(possibly one short) by the variable-rate engine used for ``low_latency=True``;
measured: 24 kHz -> 8 kHz of an odd multiple of 3 samples comes out one short.
Whole 20 ms frames make every product here an even integer, and then both engines
are exact, so those totals are asserted exactly. soxr does *not* guarantee how
much comes out per call (each call returns what is ready): per-call lengths are
only checked against the delay each engine shows.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernl_trio.audio import (
    Transcoder,
    TranscoderStatistics,
    bytes_for_ms,
    duration_ms,
    pcm16_silence,
    rms_dbfs,
    silence,
    tone,
)
from kernl_trio.protocol.config import (
    PCM16_24K,
    PCMA_8K,
    PCMU_8K,
    AudioEncoding,
    AudioFormat,
)

PCM16_8K = AudioFormat(AudioEncoding.PCM16, 8000)
PCM16_16K = AudioFormat(AudioEncoding.PCM16, 16000)
PCMU_24K = AudioFormat(AudioEncoding.PCMU, 24000)

FRAME_MS = 20


def frames(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def stream(t: Transcoder, chunks: list[bytes]) -> bytes:
    return b"".join(t.convert(c) for c in chunks) + t.flush()


def samples(pcm16: bytes) -> np.ndarray:
    return np.frombuffer(pcm16, dtype="<i2").astype(np.float64)


def dominant_hz(pcm16: bytes, rate: int) -> float:
    x = samples(pcm16)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spectrum))])


# --- identity ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [PCMU_8K, PCMA_8K, PCM16_24K])
def test_identity_passes_the_same_object_through(fmt: AudioFormat) -> None:
    t = Transcoder(fmt, fmt)
    chunks = [bytes(range(160)), b"\x01\x02\x03", b"", bytes(961)]  # odd lengths too
    for chunk in chunks:
        assert t.convert(chunk) is chunk
    assert t.flush() == b""
    assert t.statistics() == TranscoderStatistics(1124, 1124, 0.0)


def test_identity_ulaw_is_byte_for_byte() -> None:
    payload = tone(PCMU_8K, 440, FRAME_MS) + b"\x00\x7f\x80\xff"
    assert Transcoder(PCMU_8K, PCMU_8K).convert(payload) == payload


# --- lengths ----------------------------------------------------------------------


@pytest.mark.parametrize("low_latency", [True, False])
def test_ulaw_8k_to_pcm16_24k_totals_are_exact(low_latency: bool) -> None:
    n = 50
    t = Transcoder(PCMU_8K, PCM16_24K, low_latency=low_latency)
    outputs = [t.convert(c) for c in frames(tone(PCMU_8K, 440, n * FRAME_MS), 160)]
    assert len(outputs) == n
    assert all(len(o) % 2 == 0 for o in outputs)  # whole samples every call
    tail = t.flush()
    assert sum(map(len, outputs)) + len(tail) == n * 960
    assert t.statistics() == TranscoderStatistics(n * 160, n * 960, 0.0)


@pytest.mark.parametrize("low_latency", [True, False])
def test_pcm16_24k_to_ulaw_8k_totals_are_exact(low_latency: bool) -> None:
    n = 50
    t = Transcoder(PCM16_24K, PCMU_8K, low_latency=low_latency)
    out = stream(t, frames(tone(PCM16_24K, 440, n * FRAME_MS), 960))
    assert len(out) == n * 160


def test_low_latency_output_is_steady() -> None:
    # The default resampler gives 20 ms out per 20 ms in once its fixed delay
    # (30 ms for 8k -> 24k) is filled: nothing comes out in bursts.
    t = Transcoder(PCMU_8K, PCM16_24K)
    outputs = [len(t.convert(c)) for c in frames(silence(PCMU_8K, 1000), 160)]
    assert outputs[2:] == [960] * 48
    assert t.statistics().buffered_ms == 30.0


@pytest.mark.parametrize(("low_latency", "max_held_ms"), [(True, 30.0), (False, 80.0)])
def test_held_back_audio_is_bounded(low_latency: bool, max_held_ms: float) -> None:
    t = Transcoder(PCMU_8K, PCM16_24K, low_latency=low_latency)
    held = []
    for c in frames(silence(PCMU_8K, 2000), 160):
        t.convert(c)
        held.append(t.statistics().buffered_ms)
    assert max(held) <= max_held_ms


@settings(deadline=None, database=None)
@given(
    pair=st.sampled_from(
        [(PCMU_8K, PCM16_24K), (PCM16_24K, PCMU_8K), (PCM16_24K, PCM16_16K), (PCMA_8K, PCM16_16K)]
    ),
    sizes=st.lists(st.integers(0, 1500), max_size=30),
    low_latency=st.booleans(),
)
def test_any_chunking_keeps_the_total_within_a_sample(
    pair: tuple[AudioFormat, AudioFormat], sizes: list[int], low_latency: bool
) -> None:
    src, dst = pair
    t = Transcoder(src, dst, low_latency=low_latency)
    out = stream(t, [bytes(range(256)) * (s // 256) + bytes(s % 256) for s in sizes])
    src_samples = sum(sizes) // (2 if src.encoding is AudioEncoding.PCM16 else 1)
    dst_width = 2 if dst.encoding is AudioEncoding.PCM16 else 1
    assert len(out) % dst_width == 0
    assert abs(len(out) // dst_width - src_samples * dst.rate / src.rate) <= 1


# --- signal content ---------------------------------------------------------------


@pytest.mark.parametrize("low_latency", [True, False])
@pytest.mark.parametrize("phone", [PCMU_8K, PCMA_8K])
def test_round_trip_through_g711_keeps_a_440_hz_tone(phone: AudioFormat, low_latency: bool) -> None:
    original = tone(PCM16_24K, 440, 1000, amplitude=0.5)
    down = Transcoder(PCM16_24K, phone, low_latency=low_latency)
    up = Transcoder(phone, PCM16_24K, low_latency=low_latency)
    coded = stream(down, frames(original, 960))
    back = stream(up, frames(coded, 160))
    assert len(back) == len(original)

    assert dominant_hz(back, 24000) == pytest.approx(440, abs=1)
    assert rms_dbfs(back) == pytest.approx(rms_dbfs(original), abs=0.3)
    # Same waveform, up to the resamplers' fractional delay: correlate against a
    # 440 Hz sine/cosine pair (away from the edges) and require almost all of the
    # energy in it. G.711 noise is about 38 dB down, a broken resampler far worse.
    x = samples(back)[2400:-2400]
    tt = np.arange(2400, 2400 + len(x)) / 24000
    basis = np.stack([np.sin(2 * np.pi * 440 * tt), np.cos(2 * np.pi * 440 * tt)], axis=1)
    fit = basis @ np.linalg.lstsq(basis, x, rcond=None)[0]
    snr_db = 10 * math.log10(float(np.sum(fit**2) / np.sum((x - fit) ** 2)))
    assert snr_db > 30


@pytest.mark.parametrize("low_latency", [True, False])
def test_downsampling_filters_out_what_8k_cannot_carry(low_latency: bool) -> None:
    # 5 kHz is above the 4 kHz Nyquist limit of 8 kHz audio. Without an
    # anti-aliasing filter it would fold back to 3 kHz at full level.
    high = tone(PCM16_24K, 5000, 1000, amplitude=0.5)
    t = Transcoder(PCM16_24K, PCM16_8K, low_latency=low_latency)
    out = stream(t, frames(high, 960))
    assert rms_dbfs(out[1600:-1600]) < -80
    assert rms_dbfs(high) > -10


def test_phone_band_edge_is_kept() -> None:
    edge = tone(PCM16_8K, 3400, 1000, amplitude=0.5)
    out = stream(Transcoder(PCM16_8K, PCM16_24K), frames(edge, 320))
    assert rms_dbfs(out[9600:-9600]) == pytest.approx(rms_dbfs(edge), abs=0.5)


def test_ulaw_silence_decodes_to_zero() -> None:
    assert silence(PCMU_8K, FRAME_MS) == b"\xff" * 160
    assert Transcoder(PCMU_8K, PCM16_8K).convert(b"\xff" * 160) == bytes(320)
    up = stream(Transcoder(PCMU_8K, PCM16_24K), frames(silence(PCMU_8K, 200), 160))
    assert up == bytes(len(up))
    assert len(up) == 200 * 48


def test_alaw_silence_decodes_to_almost_zero() -> None:
    # A-law has no zero code: 0xD5 is the smallest positive step, +8 of 32767.
    assert silence(PCMA_8K, FRAME_MS) == b"\xd5" * 160
    decoded = Transcoder(PCMA_8K, PCM16_8K).convert(silence(PCMA_8K, FRAME_MS))
    assert set(np.frombuffer(decoded, dtype="<i2").tolist()) == {8}
    assert rms_dbfs(decoded) < -70


def test_pcm16_silence_encodes_to_the_silence_bytes() -> None:
    assert Transcoder(PCM16_8K, PCMU_8K).convert(bytes(320)) == b"\xff" * 160
    assert Transcoder(PCM16_8K, PCMA_8K).convert(bytes(320)) == b"\xd5" * 160


def test_ulaw_to_alaw_at_the_same_rate() -> None:
    speech_like = tone(PCMU_8K, 440, 100, amplitude=0.3)
    alaw = Transcoder(PCMU_8K, PCMA_8K).convert(speech_like)
    assert len(alaw) == len(speech_like)
    back = Transcoder(PCMA_8K, PCM16_8K).convert(alaw)
    direct = Transcoder(PCMU_8K, PCM16_8K).convert(speech_like)
    assert np.max(np.abs(samples(back) - samples(direct))) < 0.03 * 32767


# --- odd PCM16 chunks -------------------------------------------------------------


@pytest.mark.parametrize("dst", [PCMU_24K, AudioFormat(AudioEncoding.PCMA, 24000)])
def test_odd_pcm16_chunks_carry_the_dangling_byte(dst: AudioFormat) -> None:
    pcm = tone(PCM16_24K, 440, 100)
    whole = Transcoder(PCM16_24K, dst).convert(pcm)
    t = Transcoder(PCM16_24K, dst)
    pieces, i = [], 0
    for size in [1, 3, 0, 5, 1, 1, 7, 2, 999]:
        pieces.append(t.convert(pcm[i : i + size]))
        i += size
    pieces.append(t.convert(pcm[i:]))
    assert [len(p) for p in pieces[:4]] == [0, 2, 0, 2]
    assert b"".join(pieces) == whole
    assert t.flush() == b""


def test_odd_pcm16_chunks_through_the_resampler() -> None:
    pcm = tone(PCM16_24K, 440, 400)
    even = stream(Transcoder(PCM16_24K, PCM16_8K), frames(pcm, 960))
    odd = stream(Transcoder(PCM16_24K, PCM16_8K), frames(pcm, 479))
    assert len(odd) == len(even) == len(pcm) // 3
    # soxr output may differ in the last bit or two with the chunking, no more.
    assert np.max(np.abs(samples(odd) - samples(even))) <= 2


def test_a_dangling_byte_at_flush_is_dropped() -> None:
    t = Transcoder(PCM16_8K, PCMU_8K)
    assert t.convert(b"\x00\x00\x00") == b"\xff"
    assert t.statistics().buffered_ms == pytest.approx(1 / 16)
    assert t.flush() == b""
    assert t.convert(b"\x00\x00") == b"\xff"  # the dropped byte does not come back


# --- per-stream state -------------------------------------------------------------


@pytest.mark.parametrize("low_latency", [True, False])
def test_interleaved_streams_are_independent(low_latency: bool) -> None:
    a_in = frames(tone(PCMU_8K, 440, 600), 160)
    b_in = frames(tone(PCMU_8K, 1250, 600, amplitude=0.9), 160)
    a_alone = stream(Transcoder(PCMU_8K, PCM16_24K, low_latency=low_latency), a_in)
    b_alone = stream(Transcoder(PCMU_8K, PCM16_24K, low_latency=low_latency), b_in)

    ta = Transcoder(PCMU_8K, PCM16_24K, low_latency=low_latency)
    tb = Transcoder(PCMU_8K, PCM16_24K, low_latency=low_latency)
    a_out, b_out = [], []
    for fa, fb in zip(a_in, b_in, strict=True):
        a_out.append(ta.convert(fa))
        b_out.append(tb.convert(fb))
    b_out.append(tb.flush())
    a_out.append(ta.flush())
    assert b"".join(a_out) == a_alone
    assert b"".join(b_out) == b_alone


@pytest.mark.parametrize("low_latency", [True, False])
def test_flush_and_reset_start_a_fresh_stream(low_latency: bool) -> None:
    first = frames(tone(PCMU_8K, 440, 300), 160)
    second = frames(tone(PCMU_8K, 700, 300), 160)
    fresh = stream(Transcoder(PCMU_8K, PCM16_24K, low_latency=low_latency), second)

    t = Transcoder(PCMU_8K, PCM16_24K, low_latency=low_latency)
    stream(t, first)
    assert stream(t, second) == fresh

    for c in first:
        t.convert(c)
    assert t.statistics().buffered_ms > 0
    t.reset()
    assert t.statistics().buffered_ms == 0
    assert stream(t, second) == fresh


# --- helpers ----------------------------------------------------------------------


def test_sizes() -> None:
    assert bytes_for_ms(PCMU_8K, 20) == 160
    assert bytes_for_ms(PCMA_8K, 20) == 160
    assert bytes_for_ms(PCM16_24K, 20) == 960
    assert bytes_for_ms(PCM16_24K, 0.03) == 2  # 0.72 samples, rounded to 1
    assert bytes_for_ms(PCM16_24K, 0) == 0
    assert duration_ms(PCMU_8K, 160) == 20.0
    assert duration_ms(PCM16_24K, 960) == 20.0
    assert duration_ms(PCM16_24K, bytes_for_ms(PCM16_24K, 1234)) == 1234.0
    with pytest.raises(ValueError):
        bytes_for_ms(PCMU_8K, -1)


def test_silence_helpers() -> None:
    assert pcm16_silence(20) == bytes(960)
    assert pcm16_silence(20, 8000) == bytes(320)
    assert silence(PCM16_24K, 10) == bytes(480)
    assert rms_dbfs(pcm16_silence(20)) == -math.inf


@pytest.mark.parametrize("fmt", [PCM16_24K, PCM16_8K, PCMU_8K, PCMA_8K])
def test_tone(fmt: AudioFormat) -> None:
    data = tone(fmt, 1000, 250, amplitude=0.25)
    assert len(data) == bytes_for_ms(fmt, 250)
    pcm = data if fmt.encoding is AudioEncoding.PCM16 else Transcoder(fmt, PCM16_8K).convert(data)
    assert dominant_hz(pcm, fmt.rate) == pytest.approx(1000, abs=4)
    assert rms_dbfs(pcm) == pytest.approx(20 * math.log10(0.25 / math.sqrt(2)), abs=0.2)
    with pytest.raises(ValueError):
        tone(fmt, 1000, 20, amplitude=1.5)


def test_rms_dbfs() -> None:
    assert rms_dbfs(tone(PCM16_24K, 1000, 1000, amplitude=1.0)) == pytest.approx(-3.01, abs=0.01)
    assert rms_dbfs(tone(PCM16_24K, 1000, 1000, amplitude=0.5)) == pytest.approx(-9.03, abs=0.01)
    assert rms_dbfs(b"\x00\x80" * 100) == 0.0  # -32768, full-scale square
    assert rms_dbfs(b"") == -math.inf
    with pytest.raises(ValueError):
        rms_dbfs(b"\x00\x00\x00")


def test_import_emits_no_warning() -> None:
    # A fresh interpreter, so the audioop import really runs again.
    code = "import kernl_trio.audio"
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
