"""One assistant turn as data: its responses, the audio received per item, its tool calls.

A turn opens at ``response.created`` and lasts until its audio has played and its tool calls
have settled; the follow-up response that a tool's output starts belongs to the same turn.
"""

from __future__ import annotations

import math

import attrs

from ..protocol import AudioFormat

# Virtual-clock arithmetic accumulates float error of ~1e-12 s; never let it cost a whole ms.
MS_EPSILON = 1e-6


@attrs.define(eq=False)
class Call:
    call_id: str
    name: str
    response_id: str | None
    turn: int
    cancel_on_interrupt: bool = True
    settled: bool = False


@attrs.define(eq=False)
class ItemAudio:
    item_id: str
    content_index: int
    received_bytes: int = 0


@attrs.define(eq=False)
class Turn:
    id: int
    responses: list[str] = attrs.field(factory=list)
    active_responses: set[str] = attrs.field(factory=set)
    items: dict[str, ItemAudio] = attrs.field(factory=dict)
    calls: dict[str, Call] = attrs.field(factory=dict)
    needs_followup: bool = False
    awaiting_followup: bool = False
    interrupted: bool = False
    finishing: bool = False  # no more audio can come: only playback is left

    def add_response(self, response_id: str) -> None:
        self.responses.append(response_id)
        self.active_responses.add(response_id)
        self.awaiting_followup = False

    def count_audio(self, item_id: str, content_index: int, nbytes: int) -> None:
        item = self.items.get(item_id)
        if item is None:
            item = self.items[item_id] = ItemAudio(item_id, content_index)
        item.received_bytes += nbytes

    def unsettled_calls(self) -> list[Call]:
        return [c for c in self.calls.values() if not c.settled]

    def ready_for_followup(self) -> bool:
        return (
            self.needs_followup
            and not self.interrupted
            and not self.active_responses
            and not self.unsettled_calls()
        )

    def can_finish(self) -> bool:
        """Nothing more can add audio to this turn."""
        return (
            not self.finishing
            and not self.active_responses
            and not self.unsettled_calls()
            and not self.needs_followup
            and not self.awaiting_followup
        )

    def truncation_point(
        self, played_ms: dict[str, float], output_format: AudioFormat, response_active: bool
    ) -> tuple[ItemAudio, int] | None:
        """The item to truncate and the whole ms of it really heard, or None.

        The last item with anything played is the one the user was hearing. No truncate
        when nothing of it played, or when it played to the end and no more is coming.
        """
        for item in reversed(self.items.values()):
            played = played_ms.get(item.item_id, 0.0)
            if played <= MS_EPSILON:
                continue
            received = output_format.duration_ms(item.received_bytes)
            heard = math.floor(min(played, received) + MS_EPSILON)
            if heard <= 0:
                return None
            if heard >= math.floor(received + MS_EPSILON) and not response_active:
                return None
            return item, heard
        return None
