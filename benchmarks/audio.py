"""Cost of audio transcoding per 20 ms frame, and what it means in phone calls per core.

Run from the repository root:

    .venv/bin/python benchmarks/audio.py

A phone call through a PCM16 24 kHz model needs, every 20 ms, one frame in
(Twilio u-law 8 kHz -> PCM16 24 kHz) and one frame out (PCM16 24 kHz -> u-law
8 kHz). Each direction is a long-lived :class:`~kernl_trio.audio.Transcoder`
fed one frame per call, so the resampler state and its block processing are part
of the cost. Times are the best of ``--repeat`` runs of ``--number`` frames each
(``timeit``), so they are a lower bound of the steady cost on an idle machine.

"Many streams" cycles through ``--streams`` transcoder pairs, one frame each in
turn, as a server with that many calls would; it shows what cache misses and
per-stream state cost on top of the single hot stream.

The input is deterministic (a speech-band chirp plus seeded noise), so two runs
on one machine give comparable figures. Only transcoding is measured: JSON,
base64 and WebSocket framing of the same audio are not included.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import timeit
from collections.abc import Callable

import numpy as np
import soxr  # type: ignore[import-untyped]

from kernl_trio.audio import Transcoder, bytes_for_ms
from kernl_trio.protocol.config import PCM16_24K, PCMU_8K, AudioFormat

FRAME_MS = 20
FRAME_US = FRAME_MS * 1000


def speech_like(fmt: AudioFormat, seconds: float) -> bytes:
    """A 200-3400 Hz chirp with a little seeded noise, in ``fmt`` (via a Transcoder)."""
    rate = 24000
    t = np.arange(int(seconds * rate)) / rate
    sweep = np.sin(2 * np.pi * (200 * t + (3200 / (2 * seconds)) * t * t))
    noise = np.random.default_rng(20240501).standard_normal(len(t)) * 0.02
    pcm = (np.clip(0.4 * sweep + noise, -1, 1) * 32767).astype("<i2").tobytes()
    to_fmt = Transcoder(PCM16_24K, fmt)
    return to_fmt.convert(pcm) + to_fmt.flush()


def frames_of(data: bytes, fmt: AudioFormat) -> list[bytes]:
    size = bytes_for_ms(fmt, FRAME_MS)
    return [data[i : i + size] for i in range(0, len(data) - size + 1, size)]


def best_us_per_frame(step: Callable[[], object], number: int, repeat: int) -> float:
    return min(timeit.repeat(step, number=number, repeat=repeat)) / number * 1e6


def one_stream(src: AudioFormat, dst: AudioFormat, low_latency: bool) -> Callable[[], bytes]:
    transcoder = Transcoder(src, dst, low_latency=low_latency)
    frames = itertools.cycle(frames_of(speech_like(src, 2.0), src))
    convert = transcoder.convert
    return lambda: convert(next(frames))


def many_streams(
    src: AudioFormat, dst: AudioFormat, low_latency: bool, streams: int
) -> Callable[[], bytes]:
    frames = frames_of(speech_like(src, 2.0), src)
    # Each stream starts at a different point of the signal, like unrelated calls.
    pairs = [
        (Transcoder(src, dst, low_latency=low_latency).convert, i % len(frames))
        for i in range(streams)
    ]
    turn = itertools.cycle(range(streams))
    position = [start for _, start in pairs]

    def step() -> bytes:
        i = next(turn)
        convert, _ = pairs[i]
        k = position[i]
        position[i] = (k + 1) % len(frames)
        return convert(frames[k])

    return step


def held_back_ms(src: AudioFormat, dst: AudioFormat, low_latency: bool) -> tuple[float, float]:
    """Max and mean audio held inside the transcoder after each 20 ms frame (5 s)."""
    transcoder = Transcoder(src, dst, low_latency=low_latency)
    held = []
    for frame in frames_of(speech_like(src, 5.0), src):
        transcoder.convert(frame)
        held.append(transcoder.statistics().buffered_ms)
    return max(held), sum(held) / len(held)


def overhead_us(number: int, repeat: int) -> float:
    frames = itertools.cycle(frames_of(speech_like(PCMU_8K, 2.0), PCMU_8K))
    return best_us_per_frame(lambda: next(frames), number, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20000, help="frames per timing run")
    parser.add_argument("--repeat", type=int, default=7, help="timing runs; the best is kept")
    parser.add_argument("--streams", type=int, default=1000, help="streams for 'many streams'")
    args = parser.parse_args()
    number, repeat = args.number, args.repeat

    print(
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"numpy {np.__version__}, soxr {soxr.__version__} (libsoxr {soxr.__libsoxr_version__})"
    )
    print(f"{platform.machine()}, {os.cpu_count()} logical CPUs, {platform.platform()}")
    print(f"best of {repeat} x {number} frames of {FRAME_MS} ms; {args.streams} streams\n")
    overhead = overhead_us(number, repeat)
    print(f"harness overhead, included in every figure: {overhead:.2f} us/frame\n")

    header = (
        f"{'resampler':<22}{'u-law 8k -> pcm16 24k':>23}{'pcm16 24k -> u-law 8k':>23}"
        f"{'both':>8}{'calls/core':>12}"
    )
    for label, many in [("one hot stream", False), (f"{args.streams} streams", True)]:
        print(label)
        print(header)
        for name, low_latency in [("low_latency (default)", True), ("HQ", False)]:
            costs = []
            for src, dst in [(PCMU_8K, PCM16_24K), (PCM16_24K, PCMU_8K)]:
                step = (
                    many_streams(src, dst, low_latency, args.streams)
                    if many
                    else one_stream(src, dst, low_latency)
                )
                costs.append(best_us_per_frame(step, number, repeat))
            both = sum(costs)
            print(
                f"{name:<22}{costs[0]:>20.1f} us{costs[1]:>20.1f} us{both:>5.1f} us"
                f"{FRAME_US / both:>12,.0f}"
            )
        print()

    ulaw = one_stream(PCMU_8K, PCMU_8K, True)
    print(f"identity u-law pass-through: {best_us_per_frame(ulaw, number, repeat):.2f} us/frame")
    g711 = one_stream(PCMU_8K, AudioFormat(PCM16_24K.encoding, 8000), True)
    print(f"u-law 8k -> pcm16 8k (G.711 only): {best_us_per_frame(g711, number, repeat):.2f} us")
    print("\naudio held inside a transcoder after each 20 ms frame (latency it adds)")
    for name, low_latency in [("low_latency (default)", True), ("HQ", False)]:
        up = held_back_ms(PCMU_8K, PCM16_24K, low_latency)
        down = held_back_ms(PCM16_24K, PCMU_8K, low_latency)
        print(
            f"{name:<22} in: max {up[0]:.1f} ms, mean {up[1]:.1f} ms;"
            f" out: max {down[0]:.1f} ms, mean {down[1]:.1f} ms"
        )
    print(
        "\ncalls/core = 20,000 us / (in + out): concurrent calls whose audio one core"
        " could transcode at realtime pace, and nothing else."
    )


if __name__ == "__main__":
    main()
