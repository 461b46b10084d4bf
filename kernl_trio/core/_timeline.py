"""The playback clock a session keeps when nothing reports what was really played.

Pure arithmetic on times passed in. Unless the application reports what it really played
(``report``), playback is assumed to run in real time: an item starts when its first audio
arrives (or when the previous item ends, if later) and has played ``now - start``, capped at
the audio received.
"""

from __future__ import annotations

import math

from ..protocol import PCM16_24K, AudioFormat


class AssumedTimeline:
    """Assumed real-time playback of a session's audio items."""

    def __init__(self, output_format: AudioFormat = PCM16_24K) -> None:
        self.output_format = output_format
        self._start: dict[str, float] = {}
        self._received_ms: dict[str, float] = {}
        self._reported: dict[str, float] = {}
        self._frozen: dict[str, float] = {}
        self.end = -math.inf
        """When everything received so far has been heard."""

    @property
    def output_format(self) -> AudioFormat:
        return self._output_format

    @output_format.setter
    def output_format(self, value: AudioFormat) -> None:
        self._output_format = value
        self._bytes_per_second = value.bytes_per_second  # once, not per delta

    def play(self, item_id: str, nbytes: int, now: float) -> None:
        """``nbytes`` of ``item_id`` play from ``now`` (or from the end of what came before)."""
        start = max(now, self.end)
        self._start.setdefault(item_id, start)
        ms = nbytes * 1000 / self._bytes_per_second
        self._received_ms[item_id] = self._received_ms.get(item_id, 0.0) + ms
        self.end = start + ms / 1000

    def report(self, item_id: str, played_ms: float) -> None:
        """The application says how much of ``item_id`` it has really played."""
        self._reported[item_id] = played_ms

    def played_ms(self, item_id: str, now: float) -> float:
        if item_id in self._reported:
            return self._reported[item_id]
        if item_id in self._frozen:
            return self._frozen[item_id]
        start = self._start.get(item_id)
        if start is None:
            return 0.0
        return max(0.0, min((now - start) * 1000, self._received_ms[item_id]))

    def interrupt(self, now: float) -> None:
        """Playback stops at ``now``: items still playing keep what they had played."""
        # Items sit on the timeline in arrival order: only the last ones can still be playing.
        for item_id in reversed(self._start):
            if self._start[item_id] + self._received_ms[item_id] / 1000 <= now:
                break
            self._frozen.setdefault(item_id, self.played_ms(item_id, now))
        self.end = min(self.end, now)
