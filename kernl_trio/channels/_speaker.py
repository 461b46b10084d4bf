"""A speaker that plays in trio time and knows exactly what was heard.

Both the virtual and the WAV channel play through it: ``play`` returns once a chunk has
"played" (slept for its duration), and an interruption or a cancellation mid-chunk keeps the
part played so far, to the sample.
"""

from __future__ import annotations

import attrs
import trio

from ..protocol import AudioFormat

# Late by less than this, a chunk still starts where the previous one ended (no drift from
# the scheduler's wake-up latency in real time); later than this, the speaker was idle.
_LATENESS = 0.05


@attrs.frozen
class PlayedChunk:
    """One chunk the speaker played, or the part of it played before an interruption."""

    item_id: str
    started_at: float
    audio: bytes = attrs.field(repr=lambda a: f"<{len(a)} bytes>")


@attrs.define(eq=False)
class _Current:
    item_id: str
    started_at: float
    audio: bytes


class ClockSpeaker:
    """Plays ``output_format`` audio in trio time; ``realtime=False`` plays in no time."""

    def __init__(self, output_format: AudioFormat, *, realtime: bool = True) -> None:
        self.output_format = output_format
        self.realtime = realtime
        self.played: list[PlayedChunk] = []
        self.interruptions = 0
        self._played_ms: dict[str, float] = {}
        self._current: _Current | None = None
        self._free_at = -float("inf")

    async def play(self, audio: bytes, *, item_id: str) -> None:
        now = trio.current_time()
        started = self._free_at if 0 <= now - self._free_at <= _LATENESS else now
        current = self._current = _Current(item_id, started, audio)
        self._free_at = started + self.output_format.duration_ms(len(audio)) / 1000
        try:
            if self.realtime:
                await trio.sleep_until(self._free_at)
            else:
                await trio.lowlevel.checkpoint()
        finally:
            if self._current is current:
                self._stop_current()

    @property
    def free_at(self) -> float:
        """The trio time the speaker finishes what it was handed (``-inf`` before any)."""
        return self._free_at

    def played_ms(self, item_id: str) -> float:
        played = self._played_ms.get(item_id, 0.0)
        current = self._current
        if current is not None and current.item_id == item_id:
            played += self._elapsed_ms(current)
        return played

    def interrupt(self) -> None:
        """Stop at once, keeping what of the current chunk was heard."""
        self.interruptions += 1
        self.stop()
        self._free_at = trio.current_time()

    def stop(self) -> None:
        if self._current is not None:
            self._stop_current()

    @property
    def played_audio(self) -> bytes:
        """Everything the user heard, in order."""
        return b"".join(chunk.audio for chunk in self.played)

    def _elapsed_ms(self, current: _Current) -> float:
        total = self.output_format.duration_ms(len(current.audio))
        if not self.realtime:
            return total
        return max(0.0, min((trio.current_time() - current.started_at) * 1000, total))

    def _stop_current(self) -> None:
        current = self._current
        assert current is not None
        self._current = None
        ms = self._elapsed_ms(current)
        self._played_ms[current.item_id] = self._played_ms.get(current.item_id, 0.0) + ms
        width = self.output_format.sample_width
        nbytes = int(self.output_format.bytes_per_second * ms / 1000 + 1e-6) // width * width
        self.played.append(PlayedChunk(current.item_id, current.started_at, current.audio[:nbytes]))
