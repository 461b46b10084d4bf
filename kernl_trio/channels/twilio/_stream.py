"""The pure state of one Twilio stream's playback: marks sent, echoed and cleared, and the
position the caller heard. No I/O and no clock: times come in as arguments.

:class:`~kernl_trio.channels.twilio.TwilioChannel` feeds it: ``frames()`` for audio it is
about to send, ``echo()`` for each mark Twilio sends back, ``clear()`` on an interruption.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

import attrs

__all__ = ["MAX_TRACKED_MARKS", "Echo", "MarkLedger", "ms_text"]

ULAW_BYTES_PER_MS = 8
MAX_TRACKED_MARKS = 10_000
"""A peer that never echoes must not grow memory without bound: past this many marks waiting
for an echo (or cleared and waiting for theirs) the oldest are forgotten."""


def ms_text(nbytes: int) -> str:
    """u-law bytes as milliseconds, exactly (8 bytes per ms: at most 3 decimals)."""
    whole, rest = divmod(nbytes, ULAW_BYTES_PER_MS)
    return str(whole) if not rest else f"{whole}.{rest * 125:03d}".rstrip("0")


@attrs.frozen
class Echo:
    """What one echoed mark meant: played up to ``item_id`` at ``ms``, or ``cleared`` (flushed
    by a ``clear``), or neither (a name this stream never sent, or already forgotten)."""

    name: str
    item_id: str | None
    ms: float | None
    cleared: bool
    acknowledged: int = 0
    """Marks this echo acknowledged (it and every mark sent before it)."""


@attrs.define
class MarkLedger:
    """Marks named ``"<item_id>:<ms>"``, ``ms`` being the item's audio sent so far."""

    frame_bytes: int
    max_tracked: int = MAX_TRACKED_MARKS
    _sent_bytes: dict[str, int] = attrs.field(factory=dict)
    _played: dict[str, float] = attrs.field(factory=dict)
    # mark -> (item, ms), in send order; cleared marks in clear order (dicts keep order)
    _unacked: dict[str, tuple[str, float]] = attrs.field(factory=dict)
    _cleared: dict[str, None] = attrs.field(factory=dict)
    last_mark: str | None = None
    playback_end: float = -float("inf")
    """When the audio sent so far ends playing, at the earliest (in the caller's clock)."""

    def frames(self, data: bytes, item_id: str, now: float) -> Iterator[tuple[bytes, str]]:
        """Cut u-law ``data`` of ``item_id`` into frames, each with the name of the mark that
        follows it; each is recorded as sent (awaiting its echo) as it is yielded."""
        step = self.frame_bytes
        sent = self._sent_bytes.get(item_id, 0)
        try:
            for offset in range(0, len(data), step):
                frame = data[offset : offset + step]
                sent += len(frame)
                name = f"{item_id}:{ms_text(sent)}"
                self._unacked[name] = (item_id, sent / ULAW_BYTES_PER_MS)
                self.playback_end = max(self.playback_end, now) + len(frame) / 8000
                self._sent_bytes[item_id] = sent
                self.last_mark = name
                yield frame, name
        finally:
            _trim(self._unacked, self.max_tracked)

    def echo(self, name: str) -> Echo:
        """Twilio echoed mark ``name``. Echoes come in order: every mark sent before it has
        played too."""
        if name in self._cleared:
            del self._cleared[name]
            return Echo(name, None, None, cleared=True)
        unacked = self._unacked
        if name not in unacked:
            return Echo(name, None, None, cleared=False)
        count = 0
        while unacked:
            first = next(iter(unacked))
            item, ms = unacked.pop(first)
            count += 1
            if ms > self._played.get(item, 0.0):
                self._played[item] = ms
            if first == name:
                break
        return Echo(name, item, ms, cleared=False, acknowledged=count)

    def clear(self, now: float, unsent: Collection[str] = ()) -> None:
        """The bridge sent ``clear``: marks already sent (all awaiting an echo but those in
        ``unsent``, dropped before they left) become *cleared*, so their echoes, which Twilio
        sends when it flushes them, do not move the played position."""
        for name in self._unacked:
            if name not in unsent:
                self._cleared[name] = None
        self._unacked.clear()
        _trim(self._cleared, self.max_tracked)
        self.last_mark = None
        self.playback_end = now

    def played_ms(self, item_id: str) -> float:
        """The ms of ``item_id`` in the last mark echoed as played."""
        return self._played.get(item_id, 0.0)

    def waiting_for(self, name: str | None) -> bool:
        """Whether mark ``name`` was sent and is still waiting for its echo."""
        return name is not None and name in self._unacked

    @property
    def unacknowledged(self) -> int:
        return len(self._unacked)

    @property
    def cleared(self) -> int:
        """Cleared marks whose echo has not come back yet."""
        return len(self._cleared)


def _trim(marks: dict[str, Any], limit: int) -> None:
    """Forget the oldest entries beyond ``limit`` (dicts keep insertion order)."""
    excess = len(marks) - limit
    if excess > 0:
        for name in list(marks)[:excess]:
            del marks[name]
