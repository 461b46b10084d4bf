"""An energy-based voice activity detector, the embedded server's stand-in for ``server_vad``.

It cuts the input audio into 20 ms frames and compares each frame's RMS level
(:func:`~kernl_trio.audio.rms_dbfs`) with a threshold. Speech *starts* once ``start_ms`` of
consecutive frames are loud; the reported start is the first loud frame moved back by
``prefix_padding_ms`` (but not before the previous stop), as the real API reports it. Speech
*stops* after ``silence_duration_ms`` of consecutive quiet frames; the reported end includes
that silence, as the real API's does.

Every position is in milliseconds of input audio since the detector was created (the real
API counts from the start of the session's audio), never in clock time, so the events are the
same whatever the pacing of the audio.

It is a toy compared with the neural detector of the real API: it hears energy, not voice. A
steady tone is "speech"; digital silence and quiet noise are not.
"""

from __future__ import annotations

from typing import Any

import attrs

from ..audio import Transcoder, rms_dbfs
from ..protocol.config import AudioEncoding, AudioFormat

FRAME_MS = 20


def threshold_to_dbfs(threshold: float) -> float:
    """Map the API's ``threshold`` (0.0 to 1.0, default 0.5) onto an RMS level.

    0.0 is -70 dBFS (hears almost anything), 0.5 is -40 dBFS, 1.0 is -10 dBFS (only shouting).
    Speech at a normal level is around -20 to -30 dBFS.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], not {threshold}")
    return -70.0 + 60.0 * threshold


@attrs.frozen
class VadSettings:
    """How the detector decides; :meth:`from_turn_detection` reads a GA session config."""

    threshold_dbfs: float = -40.0
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    start_ms: int = 100

    @classmethod
    def from_turn_detection(cls, detection: dict[str, Any], *, start_ms: int = 100) -> VadSettings:
        """Settings from a wire ``turn_detection`` object (``server_vad`` or ``semantic_vad``).

        Fields missing from it take the API's defaults (threshold 0.5, prefix padding 300 ms,
        silence 500 ms). ``semantic_vad`` has no such fields: it gets the same defaults.
        """
        threshold = detection.get("threshold")
        padding = detection.get("prefix_padding_ms")
        silence = detection.get("silence_duration_ms")
        return cls(
            threshold_to_dbfs(0.5 if threshold is None else float(threshold)),
            300 if padding is None else int(padding),
            500 if silence is None else int(silence),
            start_ms,
        )


@attrs.frozen
class SpeechStart:
    """Speech began at ``audio_start_ms`` (prefix padding included)."""

    audio_start_ms: int


@attrs.frozen
class SpeechStop:
    """Speech ended; ``audio_end_ms`` includes the silence that ended it."""

    audio_end_ms: int


VadEvent = SpeechStart | SpeechStop


class EnergyVAD:
    """Feed it input audio with :meth:`feed`; it returns the speech starts and stops.

    ``audio_format`` is the input format (PCM16 at any rate, or G.711, decoded for measuring);
    ``offset_ms`` is where its first audio sits in the session's input (for a detector that
    replaces another one, e.g. after the input format changed). ``settings`` may be replaced
    at any time (a session update); the detector keeps its state.
    """

    def __init__(
        self, settings: VadSettings, audio_format: AudioFormat, *, offset_ms: int = 0
    ) -> None:
        self.settings = settings
        self.audio_format = audio_format
        self._decoder: Transcoder | None = None
        if audio_format.encoding is not AudioEncoding.PCM16:
            self._decoder = Transcoder(
                audio_format, AudioFormat(AudioEncoding.PCM16, audio_format.rate)
            )
        self._frame_bytes = audio_format.rate * FRAME_MS // 1000 * 2  # decoded PCM16
        self._pending = bytearray()
        self._position_ms = offset_ms  # end of the last frame measured
        self._speaking = False
        self._loud_since: int | None = None
        self._quiet_ms = 0
        self._committed_ms = offset_ms  # the padding never reaches back before the last stop

    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def position_ms(self) -> int:
        """Milliseconds of input audio measured so far (whole frames)."""
        return self._position_ms

    @property
    def pending_ms(self) -> float:
        """Audio fed but not measured yet (less than one frame)."""
        return len(self._pending) / 2 * 1000 / self.audio_format.rate

    def feed(self, audio: bytes) -> list[VadEvent]:
        """Measure ``audio`` (any length: a partial frame waits for the rest)."""
        pcm = self._decoder.convert(audio) if self._decoder is not None else audio
        self._pending += pcm
        events: list[VadEvent] = []
        size = self._frame_bytes
        while len(self._pending) >= size:
            frame = bytes(self._pending[:size])
            del self._pending[:size]
            event = self._frame(rms_dbfs(frame) >= self.settings.threshold_dbfs)
            if event is not None:
                events.append(event)
        return events

    def _frame(self, loud: bool) -> VadEvent | None:
        start = self._position_ms
        self._position_ms += FRAME_MS
        settings = self.settings
        if not self._speaking:
            if not loud:
                self._loud_since = None
                return None
            if self._loud_since is None:
                self._loud_since = start
            if self._position_ms - self._loud_since < settings.start_ms:
                return None
            self._speaking = True
            self._quiet_ms = 0
            padded = self._loud_since - settings.prefix_padding_ms
            return SpeechStart(max(self._committed_ms, padded))
        if loud:
            self._quiet_ms = 0
            return None
        self._quiet_ms += FRAME_MS
        if self._quiet_ms < settings.silence_duration_ms:
            return None
        self._speaking = False
        self._loud_since = None
        self._committed_ms = self._position_ms
        return SpeechStop(self._position_ms)


__all__ = [
    "FRAME_MS",
    "EnergyVAD",
    "SpeechStart",
    "SpeechStop",
    "VadEvent",
    "VadSettings",
    "threshold_to_dbfs",
]
