"""The client events that turn one conversation history into another (``resetHistory``)."""

from __future__ import annotations

import itertools
import math
import uuid
from collections.abc import Callable, Sequence

import attrs

from ..protocol import (
    AudioFormat,
    ClientEvent,
    Item,
    ItemCreate,
    ItemDelete,
    ItemTruncate,
    MessageItem,
    OutputAudio,
)


def new_item_id() -> str:
    """A client-chosen item id (the server accepts ids up to 32 characters)."""
    return "item_kt" + uuid.uuid4().hex[:24]


def history_changes(
    old: Sequence[Item],
    new: Sequence[Item],
    output_format: AudioFormat,
    *,
    new_id: Callable[[], str] = new_item_id,
) -> list[ClientEvent]:
    """The client events that make the server's conversation ``old`` into ``new``.

    Items of ``old`` missing from ``new`` are deleted; an assistant item whose audio in ``new``
    is a prefix of its audio in ``old`` is truncated (at that audio part's content index);
    changed items are replaced; items without an id, or with one the server does not hold,
    are created right after the item before them in ``new``. New items without an id get one
    from ``new_id``, so the items after them can be placed behind them.
    """
    old_by_id = {item.id: item for item in old if item.id is not None}
    new_ids = {item.id for item in new if item.id is not None}
    events: list[ClientEvent] = [
        ItemDelete(item_id) for item_id in old_by_id if item_id not in new_ids
    ]
    previous = "root"
    for item in new:
        before = old_by_id.get(item.id) if item.id is not None else None
        if before is not None and before == item:
            previous = item.id or previous
            continue
        if before is not None and item.id is not None:
            cut = audio_cut(before, item, output_format)
            if cut is not None:
                content_index, ms = cut
                events.append(ItemTruncate(item.id, ms, content_index=content_index))
                previous = item.id
                continue
            events.append(ItemDelete(item.id))
        if item.id is None:
            item = attrs.evolve(item, id=new_id())
        events.append(ItemCreate(item, previous_item_id=previous))
        previous = item.id or previous
    return events


def audio_cut(before: Item, after: Item, output_format: AudioFormat) -> tuple[int, int] | None:
    """``(content_index, ms)`` when ``after`` is ``before`` with one audio part cut short."""
    if not (isinstance(before, MessageItem) and isinstance(after, MessageItem)):
        return None
    if before.role != "assistant" or attrs.evolve(after, content=before.content) != before:
        return None
    if len(before.content) != len(after.content):
        return None
    cut: tuple[int, int] | None = None
    for index, (old_part, new_part) in enumerate(zip(before.content, after.content, strict=True)):
        if old_part == new_part:
            continue
        if (
            cut is None
            and isinstance(old_part, OutputAudio)
            and isinstance(new_part, OutputAudio)
            and old_part.audio is not None
            and new_part.audio is not None
            and len(new_part.audio) < len(old_part.audio)
            and old_part.audio.startswith(new_part.audio)
        ):
            cut = index, math.floor(output_format.duration_ms(len(new_part.audio)))
            continue
        return None  # some other change: replace the item
    return cut


def counter_ids(prefix: str = "item_") -> Callable[[], str]:
    """Deterministic ids (``item_1``, ``item_2``, ...) for tests and replays."""
    numbers = itertools.count(1)
    return lambda: f"{prefix}{next(numbers)}"
