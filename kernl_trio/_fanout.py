"""Fan-out of session events to any number of subscribers, without ever waiting.

Each subscriber reads its own memory channel, sized to its ``max_backlog``. Publishing is
``send_nowait`` and nothing else: no pump task, nothing that outlives the session. A
subscriber that falls ``max_backlog`` events behind (it stopped reading, broke out of its
loop, or never started) is detached: its channel closes, it still reads every event it was
given, and then its iteration raises :class:`SubscriberOverflow`. Closing the broadcaster
ends every subscriber's iteration once it has read what its channel holds, so nothing
published before the close is lost.

A batch subscriber reads lists instead, from a channel of one slot: while the list last sent
still sits in that slot, new events join it; once taken, the next event starts a new list.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import attrs
import trio

from .errors import SubscriberOverflow

T = TypeVar("T")
U = TypeVar("U")

DEFAULT_MAX_BACKLOG = 16384


@attrs.frozen
class SubscriberStatistics:
    """One subscriber: events handed to it, events waiting in its channel, its limit."""

    delivered: int
    backlog: int
    max_backlog: int
    overflowed: bool = False


@attrs.define(eq=False)
class _State:
    max_backlog: int
    delivered: int = 0
    overflowed: bool = False


class Subscription(trio.abc.ReceiveChannel[U], Generic[U]):
    """One subscriber's stream: a memory channel that says why it ended.

    Use it as ``async with session.events() as events: async for event in events``. Its
    iteration ends when the session closes, or raises :class:`SubscriberOverflow` (after
    every event it was given) if the subscriber fell too far behind.
    """

    def __init__(self, receive: trio.MemoryReceiveChannel[U], state: _State) -> None:
        self._receive = receive
        self._state = state

    async def receive(self) -> U:
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            self._raise_if_overflowed()
            raise

    def receive_nowait(self) -> U:
        try:
            return self._receive.receive_nowait()
        except trio.EndOfChannel:
            self._raise_if_overflowed()
            raise

    def close(self) -> None:
        """Unsubscribe (synchronously)."""
        self._receive.close()

    async def aclose(self) -> None:
        self._receive.close()
        await trio.lowlevel.checkpoint()

    def statistics(self) -> trio.MemoryChannelStatistics:
        return self._receive.statistics()

    def _raise_if_overflowed(self) -> None:
        state = self._state
        if state.overflowed:
            raise SubscriberOverflow(
                f"this subscriber fell more than {state.max_backlog} events behind and was "
                f"detached after {state.delivered} events; read faster, or subscribe with a "
                "larger max_backlog (or use event_batches())",
                delivered=state.delivered,
                max_backlog=state.max_backlog,
            ) from None


@attrs.define(eq=False)
class _Subscriber(Generic[T]):
    send: trio.MemorySendChannel[T]
    state: _State


@attrs.define(eq=False)
class _BatchSubscriber(Generic[T]):
    send: trio.MemorySendChannel[list[T]]
    state: _State
    pending: list[T] = attrs.field(factory=list)  # the list last sent


class Broadcaster(Generic[T]):
    """Hands every published event to every subscriber; never waits.

    Until :meth:`end_startup`, it also keeps what it publishes, so that a subscriber made
    later can start with those events (``from_start``).
    """

    def __init__(self) -> None:
        self._subscribers: list[_Subscriber[T]] = []
        self._batch_subscribers: list[_BatchSubscriber[T]] = []
        self._startup: list[T] = []
        self._recording = True
        self._closed = False

    @property
    def startup_events(self) -> tuple[T, ...]:
        return tuple(self._startup)

    def end_startup(self) -> None:
        """Stop keeping events for ``from_start`` subscribers (those kept stay)."""
        self._recording = False

    def subscribe(
        self, max_backlog: int = DEFAULT_MAX_BACKLOG, *, from_start: bool = False
    ) -> Subscription[T]:
        if max_backlog < 1:
            raise ValueError(f"max_backlog must be at least 1, got {max_backlog}")
        send, receive = trio.open_memory_channel[T](max_backlog)
        sub = _Subscriber(send, _State(max_backlog))
        self._subscribers.append(sub)
        for event in self._earlier(from_start):
            self._deliver(sub, event)
        if self._closed:
            self._subscribers.clear()
            send.close()
        return Subscription(receive, sub.state)

    def subscribe_batches(
        self, max_backlog: int = DEFAULT_MAX_BACKLOG, *, from_start: bool = False
    ) -> Subscription[list[T]]:
        if max_backlog < 1:
            raise ValueError(f"max_backlog must be at least 1, got {max_backlog}")
        send, receive = trio.open_memory_channel[list[T]](1)
        sub = _BatchSubscriber(send, _State(max_backlog))
        self._batch_subscribers.append(sub)
        for event in self._earlier(from_start):
            self._deliver_batch(sub, event)
        if self._closed:
            self._batch_subscribers.clear()
            send.close()
        return Subscription(receive, sub.state)

    def publish(self, event: T) -> None:
        for sub in self._subscribers:
            self._deliver(sub, event)
        for batch_sub in self._batch_subscribers:
            self._deliver_batch(batch_sub, event)
        if self._recording:
            self._startup.append(event)

    def _earlier(self, from_start: bool) -> tuple[T, ...]:
        return self.startup_events if from_start else ()

    def _deliver(self, sub: _Subscriber[T], event: T) -> None:
        try:
            sub.send.send_nowait(event)
            sub.state.delivered += 1
        except trio.WouldBlock:
            self._detach(sub, overflowed=True)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._detach(sub, overflowed=False)  # the consumer closed its end

    def _deliver_batch(self, sub: _BatchSubscriber[T], event: T) -> None:
        batch = [event]
        try:
            sub.send.send_nowait(batch)
            sub.pending = batch
        except trio.WouldBlock:  # the slot still holds the last list: it grows
            if len(sub.pending) >= sub.state.max_backlog:
                self._detach(sub, overflowed=True)
                return
            sub.pending.append(event)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._detach(sub, overflowed=False)
            return
        sub.state.delivered += 1

    def _detach(self, sub: _Subscriber[T] | _BatchSubscriber[T], *, overflowed: bool) -> None:
        sub.state.overflowed = overflowed
        sub.send.close()
        if isinstance(sub, _Subscriber):
            self._subscribers = [s for s in self._subscribers if s is not sub]
        else:
            self._batch_subscribers = [s for s in self._batch_subscribers if s is not sub]

    def statistics(self) -> list[SubscriberStatistics]:
        single = [
            SubscriberStatistics(
                s.state.delivered,
                s.send.statistics().current_buffer_used,
                s.state.max_backlog,
            )
            for s in self._subscribers
        ]
        batched = [
            SubscriberStatistics(
                b.state.delivered,
                len(b.pending) if b.send.statistics().current_buffer_used else 0,
                b.state.max_backlog,
            )
            for b in self._batch_subscribers
        ]
        return single + batched

    def close(self) -> None:
        """End every subscriber's iteration once it has read what its channel holds."""
        self._closed = True
        self.end_startup()
        for sub in self._subscribers:
            sub.send.close()
        for batch_sub in self._batch_subscribers:
            batch_sub.send.close()  # the list in the slot is still read: nothing is lost
        self._subscribers = []
        self._batch_subscribers = []


__all__ = ["DEFAULT_MAX_BACKLOG", "Broadcaster", "SubscriberStatistics", "Subscription"]
