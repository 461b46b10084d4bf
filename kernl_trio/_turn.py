"""State of one assistant turn: its responses, audio accounting and tool calls.

A turn opens at ``response.created`` and lasts until its audio has played and its tool calls
have settled; a tool's follow-up response belongs to the same turn. Its cancel scope is what
an interruption cancels.
"""

from __future__ import annotations

import math

import attrs
import trio

from .protocol import AudioFormat, AudioOutputDelta

# Virtual-clock arithmetic accumulates float error of ~1e-12 s; never let it cost a whole ms.
_MS_EPSILON = 1e-6


@attrs.define(eq=False)
class Call:
    call_id: str
    name: str
    response_id: str | None
    cancel_on_interrupt: bool = True
    settled: bool = False
    scope: trio.CancelScope | None = None


@attrs.define(eq=False)
class ItemAudio:
    item_id: str
    content_index: int
    received_bytes: int = 0


@attrs.define(eq=False)
class Turn:
    previous: Turn | None
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    nursery: trio.Nursery | None = None
    done: trio.Event = attrs.field(factory=trio.Event)
    responses: list[str] = attrs.field(factory=list)
    active_responses: set[str] = attrs.field(factory=set)
    items: dict[str, ItemAudio] = attrs.field(factory=dict)
    calls: dict[str, Call] = attrs.field(factory=dict)
    needs_followup: bool = False
    awaiting_followup: bool = False
    interrupted: bool = False
    finishing: bool = False  # no more audio can come: only playback is left
    audio_send: trio.MemorySendChannel[AudioOutputDelta] = attrs.field(init=False)
    audio_receive: trio.MemoryReceiveChannel[AudioOutputDelta] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        # Unbounded: the router must never wait on playback, and the server sends a whole
        # response faster than real time; the response's own length bounds this queue.
        self.audio_send, self.audio_receive = trio.open_memory_channel[AudioOutputDelta](math.inf)

    def add_response(self, response_id: str) -> None:
        self.responses.append(response_id)
        self.active_responses.add(response_id)
        self.awaiting_followup = False

    def count_audio(self, delta: AudioOutputDelta) -> None:
        """Record ``delta`` as received (for truncation), without queueing it for playback."""
        item = self.items.get(delta.item_id)
        if item is None:
            item = self.items[delta.item_id] = ItemAudio(delta.item_id, delta.content_index)
        item.received_bytes += len(delta.audio)

    def enqueue_audio(self, delta: AudioOutputDelta) -> None:
        self.count_audio(delta)
        try:
            self.audio_send.send_nowait(delta)
        except trio.ClosedResourceError:  # pragma: no cover - guarded by `finishing`
            raise RuntimeError("audio arrived for a finished turn") from None

    def unsettled_calls(self) -> list[Call]:
        return [c for c in self.calls.values() if not c.settled]

    def ready_for_followup(self) -> bool:
        return (
            self.needs_followup
            and not self.interrupted
            and not self.active_responses
            and not self.unsettled_calls()
        )

    def try_finish(self) -> None:
        """Close the audio queue once nothing more can add to this turn."""
        if (
            not self.active_responses
            and not self.unsettled_calls()
            and not self.needs_followup
            and not self.awaiting_followup
        ):
            self.finishing = True
            self.audio_send.close()

    def truncation_point(
        self, played_ms: dict[str, float], output_format: AudioFormat, response_active: bool
    ) -> tuple[ItemAudio, int] | None:
        """The item to truncate and the whole ms of it really heard, or None.

        The last item with anything played is the one the user was hearing. No truncate
        when nothing of it played, or when it played to the end and no more is coming.
        """
        for item in reversed(self.items.values()):
            played = played_ms.get(item.item_id, 0.0)
            if played <= _MS_EPSILON:
                continue
            received = output_format.duration_ms(item.received_bytes)
            heard = math.floor(min(played, received) + _MS_EPSILON)
            if heard <= 0:
                return None
            if heard >= math.floor(received + _MS_EPSILON) and not response_active:
                return None
            return item, heard
        return None
