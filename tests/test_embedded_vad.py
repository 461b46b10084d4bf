"""The embedded server's energy-based voice activity detector, on its own."""

from __future__ import annotations

import pytest

from kernl_trio.audio import silence, tone
from kernl_trio.protocol import PCM16_24K, PCMU_8K, AudioFormat
from kernl_trio.testing.vad import (
    EnergyVAD,
    SpeechStart,
    SpeechStop,
    VadEvent,
    VadSettings,
    threshold_to_dbfs,
)

SETTINGS = VadSettings(threshold_dbfs=-40.0, prefix_padding_ms=300, silence_duration_ms=500)


def _speech(fmt: AudioFormat, *parts: tuple[str, float]) -> bytes:
    """("s", ms) for silence, ("t", ms) for a loud 440 Hz tone (about -9 dBFS)."""
    return b"".join(
        silence(fmt, ms) if kind == "s" else tone(fmt, 440, ms, amplitude=0.5) for kind, ms in parts
    )


def _feed(vad: EnergyVAD, audio: bytes, chunk: int) -> list[tuple[int, VadEvent]]:
    """Events with the number of input bytes fed when each came out."""
    events: list[tuple[int, VadEvent]] = []
    for offset in range(0, len(audio), chunk):
        for event in vad.feed(audio[offset : offset + chunk]):
            events.append((offset + len(audio[offset : offset + chunk]), event))
    return events


def test_start_is_padded_and_stop_includes_the_silence() -> None:
    vad = EnergyVAD(SETTINGS, PCM16_24K)
    audio = _speech(PCM16_24K, ("s", 1000), ("t", 1000), ("s", 1000))
    events = _feed(vad, audio, 960)  # 20 ms chunks
    assert [event for _, event in events] == [SpeechStart(700), SpeechStop(2500)]
    # Speech starts once 100 ms of it were heard; it stops after 500 ms of silence.
    assert [fed / 48 for fed, _ in events] == [1100, 2500]
    assert not vad.speaking and vad.position_ms == 3000


@pytest.mark.parametrize("chunk", [2, 7 * 2, 481 * 2, 48000, 10**9])
def test_events_do_not_depend_on_how_the_audio_is_cut(chunk: int) -> None:
    vad = EnergyVAD(SETTINGS, PCM16_24K)
    audio = _speech(PCM16_24K, ("s", 400), ("t", 700), ("s", 600), ("t", 300), ("s", 900))
    assert [event for _, event in _feed(vad, audio, chunk)] == [
        SpeechStart(100),
        SpeechStop(1600),
        SpeechStart(1600),  # padded from 1700 ms, but not back before the previous stop
        SpeechStop(2500),
    ]


def test_short_noise_and_short_pauses_do_not_count() -> None:
    vad = EnergyVAD(SETTINGS, PCM16_24K)
    audio = _speech(
        PCM16_24K,
        ("s", 500),
        ("t", 80),  # shorter than the 100 ms it takes to start
        ("s", 500),
        ("t", 400),
        ("s", 480),  # shorter than the 500 ms it takes to stop
        ("t", 400),
        ("s", 500),
    )
    assert [event for _, event in _feed(vad, audio, 960)] == [
        SpeechStart(780),
        SpeechStop(2860),
    ]


def test_padding_never_goes_before_the_start_of_the_audio() -> None:
    vad = EnergyVAD(SETTINGS, PCM16_24K)
    events = vad.feed(_speech(PCM16_24K, ("s", 100), ("t", 300), ("s", 500)))
    assert events == [SpeechStart(0), SpeechStop(900)]


def test_quiet_audio_is_not_speech() -> None:
    vad = EnergyVAD(SETTINGS, PCM16_24K)
    assert vad.feed(tone(PCM16_24K, 440, 2000, amplitude=0.005)) == []  # about -49 dBFS
    loud = EnergyVAD(VadSettings(threshold_dbfs=-60.0), PCM16_24K)
    assert loud.feed(tone(PCM16_24K, 440, 2000, amplitude=0.005)) == [SpeechStart(0)]


def test_g711_input_is_decoded_before_measuring() -> None:
    vad = EnergyVAD(SETTINGS, PCMU_8K)
    audio = _speech(PCMU_8K, ("s", 1000), ("t", 1000), ("s", 1000))
    events = _feed(vad, audio, 160)  # Twilio's 20 ms frames
    assert [event for _, event in events] == [SpeechStart(700), SpeechStop(2500)]
    assert [fed / 8 for fed, _ in events] == [1100, 2500]


def test_an_offset_carries_positions_over_from_a_previous_detector() -> None:
    vad = EnergyVAD(SETTINGS, PCM16_24K, offset_ms=5000)
    assert vad.feed(_speech(PCM16_24K, ("t", 200), ("s", 500))) == [
        SpeechStart(5000),
        SpeechStop(5700),
    ]


def test_settings_can_change_without_losing_state() -> None:
    vad = EnergyVAD(SETTINGS, PCM16_24K)
    assert vad.feed(_speech(PCM16_24K, ("t", 200))) == [SpeechStart(0)]
    vad.settings = VadSettings(silence_duration_ms=200)
    assert vad.feed(_speech(PCM16_24K, ("s", 300))) == [SpeechStop(400)]


def test_settings_from_the_wire_turn_detection() -> None:
    assert threshold_to_dbfs(0.5) == -40.0
    assert threshold_to_dbfs(0.0) == -70.0 and threshold_to_dbfs(1.0) == -10.0
    with pytest.raises(ValueError):
        threshold_to_dbfs(1.5)
    server_vad = {
        "type": "server_vad",
        "threshold": 0.75,
        "prefix_padding_ms": 100,
        "silence_duration_ms": 250,
    }
    assert VadSettings.from_turn_detection(server_vad, start_ms=60) == VadSettings(
        -25.0, 100, 250, 60
    )
    assert VadSettings.from_turn_detection({"type": "semantic_vad"}) == VadSettings(
        -40.0, 300, 500, 100
    )
