"""The channel a session has when the application plays the audio itself.

Without a channel the application plays the audio it reads from ``session.events()``. The
session then keeps an assumed real-time playback clock (the core's
:class:`~kernl_trio.core.AssumedTimeline`), which the application corrects with
``session.report_played``. This class shows that clock as a
:class:`~kernl_trio.model.RealtimeChannel` on trio's clock.
"""

from __future__ import annotations

import trio

from .core import AssumedTimeline
from .model import ChannelInput
from .protocol import AudioFormat


class AssumedPlayback:
    """A :class:`~kernl_trio.model.RealtimeChannel` that plays nothing and keeps time."""

    def __init__(self, timeline: AssumedTimeline | None = None) -> None:
        self.timeline = timeline if timeline is not None else AssumedTimeline()
        send, self._input = trio.open_memory_channel[ChannelInput](0)
        send.close()

    @property
    def output_format(self) -> AudioFormat:
        return self.timeline.output_format

    @property
    def input_format(self) -> AudioFormat:
        return self.timeline.output_format

    @property
    def input(self) -> trio.MemoryReceiveChannel[ChannelInput]:
        return self._input

    async def play(self, audio: bytes, *, item_id: str, content_index: int = 0) -> None:
        self.timeline.play(item_id, len(audio), trio.current_time())
        await trio.lowlevel.checkpoint()

    def report(self, item_id: str, played_ms: float) -> None:
        """The application says how much of ``item_id`` it has really played."""
        self.timeline.report(item_id, played_ms)

    def played_ms(self, item_id: str) -> float:
        return self.timeline.played_ms(item_id, trio.current_time())

    def interrupt(self) -> None:
        self.timeline.interrupt(trio.current_time())

    async def wait_drained(self) -> None:
        await trio.sleep_until(max(self.timeline.end, trio.current_time()))

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()
