"""Fan-out of session events to any number of subscribers, without ever blocking.

Each subscriber reads its own bounded memory channel. Publishing never waits: when a
subscriber's channel is full, its events queue in that subscriber's backlog and one pump task
feeds them in with ``await send`` — backpressure on that subscriber's stream only. Nothing is
dropped while the session runs; ``statistics()`` reports backlogs so slow consumers show.

A batch subscriber reads lists instead, from a channel of one slot: while the list last sent
still sits in that slot (the consumer has not taken it), new events join it; once taken, the
next event starts a new list. Each receive returns everything published since the previous
one, with one checkpoint per list rather than per event, and no pump is ever needed.
"""

from __future__ import annotations

import collections
import contextlib
import math
from typing import Generic, TypeVar

import attrs
import trio

T = TypeVar("T")


@attrs.frozen
class SubscriberStatistics:
    delivered: int
    backlog: int
    max_backlog: int
    buffer_size: float


@attrs.define(eq=False)
class _Subscriber(Generic[T]):
    send: trio.MemorySendChannel[T]
    buffer_size: float
    backlog: collections.deque[T] = attrs.field(factory=collections.deque)
    delivered: int = 0
    max_backlog: int = 0
    pumping: bool = False


@attrs.define(eq=False)
class _BatchSubscriber(Generic[T]):
    send: trio.MemorySendChannel[list[T]]
    pending: list[T] = attrs.field(factory=list)  # the list last sent
    delivered: int = 0
    max_backlog: int = 0


class Broadcaster(Generic[T]):
    def __init__(self) -> None:
        self._subscribers: list[_Subscriber[T]] = []
        self._batch_subscribers: list[_BatchSubscriber[T]] = []
        self._nursery: trio.Nursery | None = None
        self._closed = False
        self.undelivered_at_close = 0

    def bind(self, nursery: trio.Nursery) -> None:
        """Where backlog pumps run (the session's nursery)."""
        self._nursery = nursery

    def subscribe(self, buffer: int = 256) -> trio.MemoryReceiveChannel[T]:
        send, receive = trio.open_memory_channel[T](buffer)
        if self._closed:
            send.close()
        else:
            self._subscribers.append(_Subscriber(send, buffer))
        return receive

    def subscribe_batches(self) -> trio.MemoryReceiveChannel[list[T]]:
        send, receive = trio.open_memory_channel[list[T]](1)
        if self._closed:
            send.close()
        else:
            self._batch_subscribers.append(_BatchSubscriber(send))
        return receive

    def publish(self, event: T) -> None:
        if self._batch_subscribers:
            self._publish_batches(event)
        gone: list[_Subscriber[T]] = []
        for sub in self._subscribers:
            if sub.backlog:
                self._queue(sub, event)
                continue
            try:
                sub.send.send_nowait(event)
                sub.delivered += 1
            except trio.WouldBlock:
                self._queue(sub, event)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                gone.append(sub)  # the consumer closed its end
        for sub in gone:
            self._subscribers.remove(sub)

    def _publish_batches(self, event: T) -> None:
        gone: list[_BatchSubscriber[T]] = []
        for sub in self._batch_subscribers:
            sub.delivered += 1
            batch = [event]
            try:
                sub.send.send_nowait(batch)
                sub.pending = batch
            except trio.WouldBlock:  # the slot still holds the last list: it grows
                sub.pending.append(event)
                sub.max_backlog = max(sub.max_backlog, len(sub.pending))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                gone.append(sub)  # the consumer closed its end
        for sub in gone:
            self._batch_subscribers.remove(sub)

    def _queue(self, sub: _Subscriber[T], event: T) -> None:
        sub.backlog.append(event)
        sub.max_backlog = max(sub.max_backlog, len(sub.backlog))
        if not sub.pumping and self._nursery is not None:
            sub.pumping = True
            self._nursery.start_soon(self._pump, sub)

    async def _pump(self, sub: _Subscriber[T]) -> None:
        try:
            while sub.backlog:
                await sub.send.send(sub.backlog[0])
                sub.backlog.popleft()
                sub.delivered += 1
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            with contextlib.suppress(ValueError):
                self._subscribers.remove(sub)
        finally:
            sub.pumping = False

    def statistics(self) -> list[SubscriberStatistics]:
        single = [
            SubscriberStatistics(
                s.delivered,
                len(s.backlog) + s.send.statistics().current_buffer_used,
                s.max_backlog,
                s.buffer_size,
            )
            for s in self._subscribers
        ]
        batched = [
            SubscriberStatistics(
                b.delivered,
                len(b.pending) if b.send.statistics().current_buffer_used else 0,
                b.max_backlog,
                math.inf,
            )
            for b in self._batch_subscribers
        ]
        return single + batched

    def close(self) -> None:
        """End every subscriber's iteration once it has read what its channel holds."""
        self._closed = True
        for sub in self._subscribers:
            self.undelivered_at_close += len(sub.backlog)
            sub.send.close()
        self._subscribers.clear()
        for batch_sub in self._batch_subscribers:
            batch_sub.send.close()  # the list in the slot is still read: nothing is lost
        self._batch_subscribers.clear()
