"""``RealtimeSession``: the trio driver of one conversation.

    run()                    one nursery; leaving it joins everything
      ├─ connection          writer (+ watchdog) tasks, inside the model's ``connect()``
      ├─ router              reads batches of server events and feeds them to the core
      ├─ channel input       microphone audio / commit -> connection; interrupts -> core
      ├─ microphone sender   queued microphone audio -> connection
      └─ turn                one cancel scope per assistant turn
           ├─ playback       the turn's audio -> channel, paced by the channel
           └─ tool calls     one task per call

The rules (turns, interruption, tool settlement, truncation) live in the pure
:class:`~kernl_trio.core.Conversation`; this module only carries out its actions. See
docs/concepts.md.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar, overload

import attrs
import trio

from ._errors import collapse
from ._fanout import DEFAULT_MAX_BACKLOG, Broadcaster, SubscriberStatistics, Subscription
from ._playback import AssumedPlayback
from .context import Context
from .core import (
    Action,
    CancelTool,
    CancelTurn,
    ChannelPlayback,
    Configured,
    Conversation,
    EndTurnAudio,
    Play,
    Publish,
    Rejected,
    Send,
    StartTool,
    StartTurn,
    ToolOutput,
    ToolPolicy,
    error_output,
    history_changes,
)
from .errors import (
    ConfigurationError,
    ConnectionClosed,
    ConnectionLost,
    HandshakeFailed,
    SessionRejected,
)
from .limits import CLOSE_TIMEOUT
from .model import (
    ChannelAudio,
    ChannelCommit,
    ChannelInterrupt,
    ConnectOptions,
    RealtimeChannel,
    RealtimeConnection,
    RealtimeModel,
    RealtimeTransport,
    StatusChanged,
)
from .protocol import (
    AudioFormat,
    AudioInputAppend,
    AudioInputCommit,
    AudioOutputDelta,
    ClientCredential,
    ClientEvent,
    InputText,
    Item,
    ItemCreate,
    MessageItem,
    ResponseConfig,
    ResponseCreate,
    ServerEvent,
    SessionConfig,
    SessionUpdate,
    ToolCall,
    TransportStatus,
)
from .tools import Tool, ToolArgumentsError

if TYPE_CHECKING:
    from .agent import RealtimeAgent

SessionEvent = ServerEvent | StatusChanged | ToolOutput
E = TypeVar("E", bound=SessionEvent)

MICROPHONE_BACKLOG = 500
"""Microphone chunks queued behind a slow socket before the channel is held back."""

MICROPHONE_STALL = 0.5
"""How long the channel is held back by a full microphone queue. After that the socket is
taking no audio: microphone input is dropped (``statistics().microphone_dropped``) until
the queue has room, so that the channel's interrupts still get through."""

CLOSE_GRACE = CLOSE_TIMEOUT
"""How long closing waits for a call that must not be cancelled, and for the channel."""


@attrs.frozen
class SessionStatistics:
    late_audio_dropped: int
    interruptions: int
    subscribers: list[SubscriberStatistics]
    abandoned_threads: int = 0
    """Sync tools whose worker thread was abandoned by a cancellation and may still run."""
    microphone_dropped: int = 0
    """Microphone chunks (and commits) dropped while the socket took no audio (see
    ``MICROPHONE_STALL``)."""


@attrs.define(eq=False)
class _TurnTasks:
    """What the driver holds for one turn: its scope, its audio queue, its tools."""

    id: int
    previous: _TurnTasks | None
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    done: trio.Event = attrs.field(factory=trio.Event)
    nursery: trio.Nursery | None = None
    waiting_tools: list[StartTool] = attrs.field(factory=list)
    drain_until: float | None = None
    audio_send: trio.MemorySendChannel[AudioOutputDelta] = attrs.field(init=False)
    audio_receive: trio.MemoryReceiveChannel[AudioOutputDelta] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        # Unbounded: the router must never wait on playback; the response bounds it.
        self.audio_send, self.audio_receive = trio.open_memory_channel[AudioOutputDelta](math.inf)


class RealtimeSession:
    """A live voice conversation between an agent and a realtime model.

    Use :func:`open_session` (an async context manager), or ``await nursery.start(session.run)``
    when you own the nursery. Nothing the session starts outlives it.

    ``config`` is the session's initial configuration (turn detection, transcription,
    modalities, voice, formats, ...): it goes in the first ``session.update`` together with
    the agent's instructions and tools, and the session is ready once the server confirms it.
    ``answer_unknown_tools=False`` leaves calls of tools the agent does not define to the
    application (:meth:`send_tool_output`) instead of answering them with an error.
    """

    def __init__(
        self,
        agent: RealtimeAgent,
        *,
        model: RealtimeModel | None = None,
        channel: RealtimeChannel | None = None,
        context: Context[Any] | None = None,
        transport: RealtimeTransport | None = None,
        credential: ClientCredential | None = None,
        connect_options: ConnectOptions | None = None,
        config: SessionConfig | None = None,
        answer_unknown_tools: bool = True,
    ) -> None:
        self.agent = agent
        self._tools: dict[str, Tool] = agent.all_tools()  # duplicate names fail here
        chosen = model if model is not None else agent.model
        if chosen is None:
            raise ConfigurationError(
                f"no model for agent {agent.id!r}: pass model= to the session or set the "
                "agent's model (e.g. OpenAIRealtimeModel() from kernl_trio.providers.openai)"
            )
        self.model: RealtimeModel = chosen
        self.context: Context[Any] = context if context is not None else Context(None)
        self._transport = transport
        options = connect_options or ConnectOptions()
        if credential is not None:
            options = attrs.evolve(options, credential=credential)
        self._options = options
        self._initial_config = config or SessionConfig()
        self._user_channel = channel
        self._handles_audio = transport is not None and transport.handles_audio
        self._core = Conversation(
            {name: ToolPolicy(t.cancel_on_interrupt) for name, t in self._tools.items()},
            playback=(
                ChannelPlayback(channel.played_ms)
                if channel is not None and not self._handles_audio
                else None
            ),
            plays_audio=not self._handles_audio,
            answer_unknown_tools=answer_unknown_tools,
        )
        self.channel: RealtimeChannel = (
            channel if channel is not None else AssumedPlayback(self._core.timeline)
        )
        self.id: str | None = None
        self._status = TransportStatus.DISCONNECTED
        self._conn: RealtimeConnection | None = None
        self._nursery: trio.Nursery | None = None
        self._events: Broadcaster[SessionEvent] = Broadcaster()
        self._ready = trio.Event()
        self._rejection: SessionRejected | None = None
        self._close_requested = trio.Event()
        self._closing = False
        self._started = False
        self._turns: dict[int, _TurnTasks] = {}
        self._call_scopes: dict[str, trio.CancelScope] = {}
        self._protected: set[str] = set()  # running calls an interruption does not cancel
        self._protected_changed = trio.Event()
        self._mic_send, self._mic_receive = trio.open_memory_channel[ClientEvent](
            MICROPHONE_BACKLOG
        )
        self._abandoned_threads = 0
        self._microphone_dropped = 0

    # -- state --------------------------------------------------------------------------------
    @property
    def status(self) -> TransportStatus:
        """``connecting``, ``connected``, ``disconnecting``, then ``disconnected``."""
        return self._status

    @property
    def muted(self) -> bool | None:
        return self._conn.muted if self._conn is not None else None

    @property
    def output_format(self) -> AudioFormat:
        """The format the model sends audio in (from the server's session config)."""
        return self._core.output_format

    @property
    def config(self) -> SessionConfig:
        """The session configuration as the server last confirmed it."""
        return self._core.config

    @property
    def startup_events(self) -> tuple[SessionEvent, ...]:
        """The events published before the session was ready (see ``events(from_start=)``)."""
        return self._events.startup_events

    def statistics(self) -> SessionStatistics:
        core = self._core.statistics()
        return SessionStatistics(
            core.late_audio_dropped,
            core.interruptions,
            self._events.statistics(),
            self._abandoned_threads,
            self._microphone_dropped,
        )

    # -- lifecycle ------------------------------------------------------------------------------
    async def run(
        self, *, task_status: trio.TaskStatus[RealtimeSession] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Connect, configure, and serve the session until :meth:`close` (or an error).

        ``task_status.started(session)`` fires once the server has confirmed the session's
        configuration. Raises single typed exceptions (``ConnectionLost``,
        ``HandshakeFailed``, ``SessionRejected``, ...).
        """
        if self._started:
            raise ConfigurationError("a RealtimeSession runs once")
        self._started = True
        self._set_status(TransportStatus.CONNECTING)
        try:
            async with self._connect() as conn:
                self._conn = conn
                self._set_status(TransportStatus.CONNECTED)
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    nursery.start_soon(self._route, conn)
                    await self._handshake()
                    if self._user_channel is not None and not self._handles_audio:
                        nursery.start_soon(self._read_channel_input)
                        nursery.start_soon(self._send_microphone, conn)
                    self._events.end_startup()
                    task_status.started(self)
                    await self._close_requested.wait()
                    self._closing = True
                    self._set_status(TransportStatus.DISCONNECTING)
                    await self._wait_for_protected_calls()
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise collapse(group) from None
        finally:
            self._closing = True
            if self._status is not TransportStatus.DISCONNECTED:
                self._set_status(TransportStatus.DISCONNECTING)
            with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_GRACE):
                await self.channel.aclose()
            self._set_status(TransportStatus.DISCONNECTED)
            self._events.close()

    def close(self) -> None:
        """Ask the session to end: tools are cancelled, the channel and connection closed."""
        self._close_requested.set()

    def _connect(self) -> AbstractAsyncContextManager[RealtimeConnection]:
        if self._transport is not None:
            return self._transport.connect(self.model, self._options)
        return self.model.connect(self._options)

    async def _handshake(self) -> None:
        config = (await self.agent.session_config(self.context)).merged(self._initial_config)
        if self._user_channel is not None and not self._handles_audio:
            config = attrs.evolve(
                config,
                input_format=self._user_channel.input_format,
                output_format=self._user_channel.output_format,
            )
        self._execute(self._core.configure(config))
        timeout = self._options.connect_timeout
        with trio.move_on_after(timeout) as waited:
            await self._ready.wait()
        if waited.cancelled_caught:
            raise HandshakeFailed(
                f"the server did not confirm the session's configuration within {timeout} s"
            )
        if self._rejection is not None:
            raise self._rejection

    async def _wait_for_protected_calls(self) -> None:
        """Closing gives calls marked not to be cancelled ``CLOSE_GRACE`` s to finish."""
        await trio.lowlevel.checkpoint()
        with trio.move_on_after(CLOSE_GRACE):
            while self._protected:
                self._protected_changed = trio.Event()
                await self._protected_changed.wait()

    # -- the application's side ------------------------------------------------------------------
    def events(
        self, max_backlog: int = DEFAULT_MAX_BACKLOG, *, from_start: bool = False
    ) -> Subscription[SessionEvent]:
        """A stream of every session event from now on, for one consumer.

        Close it (``async with``) to unsubscribe. The session never waits for it: a consumer
        that falls ``max_backlog`` events behind is detached, and its iteration raises
        :class:`~kernl_trio.errors.SubscriberOverflow` after the events it was given. It
        ends cleanly when the session closes, after every event published before the close.
        ``from_start=True`` first replays :attr:`startup_events` (the connection's status
        changes, ``session.created``, ``session.updated`` and whatever came with them).
        """
        return self._events.subscribe(max_backlog, from_start=from_start)

    def event_batches(
        self, max_backlog: int = DEFAULT_MAX_BACKLOG, *, from_start: bool = False
    ) -> Subscription[list[SessionEvent]]:
        """The same events as :meth:`events`, for one consumer, as lists.

        Each receive returns every event published since the previous receive (at least
        one), in order: one checkpoint per list instead of per event, for a consumer that
        keeps up with audio bursts. A list longer than ``max_backlog`` detaches it, as for
        :meth:`events`. Close it (``async with``) to unsubscribe.
        """
        return self._events.subscribe_batches(max_backlog, from_start=from_start)

    @overload
    async def wait_for(self, what: type[E]) -> E: ...

    @overload
    async def wait_for(
        self, what: tuple[type[Any], ...] | Callable[[SessionEvent], bool]
    ) -> SessionEvent: ...

    async def wait_for(
        self,
        what: type[Any] | tuple[type[Any], ...] | Callable[[SessionEvent], bool],
    ) -> Any:
        """The next event of the given type(s), or matching the predicate (replaces ``once``).

        Subscribe with :meth:`events` first if the event may arrive before this is called.
        """

        def match(event: SessionEvent) -> bool:
            if isinstance(what, type | tuple):
                return isinstance(event, what)
            return what(event)

        async with self.events() as stream:
            async for event in stream:
                if match(event):
                    return event
        raise ConnectionClosed("the session closed before the event arrived")

    async def send(self, event: ClientEvent) -> None:
        """Send one neutral client event as is."""
        await self._connection().send(event)

    async def send_raw(self, message: dict[str, Any]) -> None:
        """Send one provider wire message as is (escape hatch)."""
        await self._connection().send_raw(message)

    async def send_audio(self, audio: bytes, *, commit: bool = False) -> None:
        """Append microphone audio (in the session's input format); optionally commit."""
        conn = self._connection()
        await conn.send(AudioInputAppend(audio))
        if commit:
            await conn.send(AudioInputCommit())

    async def commit(self) -> None:
        await self._connection().send(AudioInputCommit())

    async def send_message(
        self,
        message: str | MessageItem,
        *,
        respond: bool = True,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Add a user message (text, or a :class:`MessageItem` with text, audio or image
        parts) to the conversation and, by default, ask for a response.

        ``extra`` adds fields to the item's creation event on the wire (the seed's
        ``otherEventData``), e.g. ``{"event_id": "..."}``.
        """
        item = (
            message
            if isinstance(message, MessageItem)
            else MessageItem(role="user", content=(InputText(message),))
        )
        conn = self._connection()
        await conn.send(ItemCreate(item, extra=extra))
        if respond:
            await conn.send(ResponseCreate())

    async def create_response(self, config: ResponseConfig | None = None) -> None:
        await self._connection().send(ResponseCreate(config))

    async def update_config(self, config: SessionConfig) -> None:
        """Send a partial session config: only the fields set in ``config`` change."""
        await self._connection().send(SessionUpdate(config))

    async def send_tool_output(
        self,
        call: ToolCall | str,
        output: str,
        *,
        start_response: bool = True,
        error: bool = False,
    ) -> None:
        """Answer a tool call yourself; a tool still running for it is cancelled.

        A call of the current turn is settled like the agent's own calls (one follow-up
        response once every call of the turn has its output). Raises
        :class:`~kernl_trio.errors.CallAlreadyAnswered` for a call that has its output.
        """
        call_id = call if isinstance(call, str) else call.call_id
        self._connection()
        self._execute(
            self._core.answer_call(call_id, output, error=error, start_response=start_response)
        )
        await trio.lowlevel.checkpoint()

    async def reset_history(self, old: Sequence[Item], new: Sequence[Item]) -> None:
        """Make the server's conversation match ``new``, given that it holds ``old``.

        Items of ``old`` missing from ``new`` are deleted; an assistant item whose audio in
        ``new`` is a prefix of its audio in ``old`` is truncated; changed items are replaced;
        items without an id, or with an unknown one, are created in place, in order.
        """
        conn = self._connection()
        await trio.lowlevel.checkpoint()  # also when there is nothing to change
        for event in history_changes(old, new, self.output_format):
            await conn.send(event)

    async def interrupt(self) -> None:
        """Interrupt the assistant now: the same path as a barge-in (see docs/concepts.md)."""
        self._connection()
        self._execute(self._core.interrupt("client", trio.current_time()))
        await trio.lowlevel.checkpoint()

    def report_played(self, item_id: str, played_ms: float) -> None:
        """Without a channel: tell the session how much of ``item_id`` you have played."""
        if self._core.timeline is None:
            raise ConfigurationError("report_played is for sessions without a channel")
        self._core.report_played(item_id, played_ms)

    def mute(self) -> None:
        """Stop sending microphone audio to the model (the channel keeps running)."""
        self._connection().mute()

    def unmute(self) -> None:
        self._connection().unmute()

    def _connection(self) -> RealtimeConnection:
        if self._conn is None or self._status is TransportStatus.DISCONNECTED or self._closing:
            raise ConnectionClosed("the session is not connected")
        return self._conn

    # -- router ------------------------------------------------------------------------------
    async def _route(self, conn: RealtimeConnection) -> None:
        core, execute = self._core, self._execute
        while True:
            try:
                batch = await conn.receive_batch()
            except trio.EndOfChannel:
                break
            now = trio.current_time()
            for event in batch:
                if isinstance(event, StatusChanged):
                    continue  # the session reports its own status
                if execute(core.receive(event, now)):
                    # Step aside for two passes, before the rest of the batch: the tasks
                    # the interruption woke (the application waiting for
                    # ResponseInterrupted, the cancelled turn and its tools, the writer)
                    # run before the router handles the late audio read with it. Measured
                    # in benchmarks/run.py W2 and W4 (docs/performance.md).
                    await trio.lowlevel.checkpoint()
                    await trio.lowlevel.checkpoint()
        await trio.lowlevel.checkpoint()
        if not self._closing:
            raise conn.close_error or ConnectionLost("the connection ended")

    def _execute(self, actions: list[Action]) -> bool:
        """Carry out the core's actions, in order, without a checkpoint; True if they
        interrupted a turn."""
        interrupted = False
        for action in actions:
            if isinstance(action, Publish):
                self._events.publish(action.event)
            elif isinstance(action, Play):
                self._turns[action.turn].audio_send.send_nowait(action.delta)
            elif isinstance(action, Send):
                self._connection_for_core().send_nowait(action.event)
            elif isinstance(action, StartTurn):
                self._start_turn(action)
            elif isinstance(action, EndTurnAudio):
                turn = self._turns.get(action.turn)
                if turn is not None:
                    turn.drain_until = action.drain_until
                    turn.audio_send.close()
            elif isinstance(action, CancelTurn):
                interrupted = True
                cancelled = self._turns.get(action.turn)
                if cancelled is not None:
                    cancelled.scope.cancel()
                    cancelled.audio_send.close()
                self.channel.interrupt()
            elif isinstance(action, StartTool):
                self._start_tool(action)
            elif isinstance(action, CancelTool):
                scope = self._call_scopes.get(action.call_id)
                if scope is not None:
                    scope.cancel()
            elif isinstance(action, Configured):
                self.id = self.context.session_id = action.session_id
                self._ready.set()
            elif isinstance(action, Rejected):
                self._rejection = SessionRejected(
                    f"the server refused the session configuration: {action.error.message}",
                    error=action.error,
                )
                self._ready.set()
        return interrupted

    def _connection_for_core(self) -> RealtimeConnection:
        assert self._conn is not None
        return self._conn

    # -- turns -----------------------------------------------------------------------------------
    def _start_turn(self, action: StartTurn) -> None:
        previous = self._turns.get(action.previous) if action.previous is not None else None
        turn = _TurnTasks(action.turn, previous)
        self._turns[turn.id] = turn
        assert self._nursery is not None
        self._nursery.start_soon(self._run_turn, turn)

    async def _run_turn(self, turn: _TurnTasks) -> None:
        try:
            with turn.scope:
                async with trio.open_nursery() as nursery:
                    turn.nursery = nursery
                    for waiting in turn.waiting_tools:
                        nursery.start_soon(self._run_tool, waiting)
                    turn.waiting_tools.clear()
                    await self._play(turn)
        finally:
            turn.done.set()
            turn.previous = None
            del self._turns[turn.id]
            self._execute(self._core.turn_done(turn.id))

    async def _play(self, turn: _TurnTasks) -> None:
        if turn.previous is not None:
            await turn.previous.done.wait()  # one speaker: turns play in order
        async for delta in turn.audio_receive:
            await self.channel.play(
                delta.audio, item_id=delta.item_id, content_index=delta.content_index
            )
        if turn.drain_until is not None:
            await trio.sleep_until(turn.drain_until)
        else:
            await self.channel.wait_drained()

    # -- tools -----------------------------------------------------------------------------------
    def _start_tool(self, action: StartTool) -> None:
        if not action.in_turn:
            self._protected.add(action.call_id)
            assert self._nursery is not None
            self._nursery.start_soon(self._run_tool, action)
            return
        turn = self._turns[action.turn]
        if turn.nursery is None:
            turn.waiting_tools.append(action)  # the turn's task starts it
        else:
            turn.nursery.start_soon(self._run_tool, action)

    async def _run_tool(self, action: StartTool) -> None:
        await trio.lowlevel.checkpoint()  # bad arguments fail before the tool's first await
        tool = self._tools[action.name]
        error = True
        try:
            with trio.CancelScope() as scope:
                self._call_scopes[action.call_id] = scope
                try:
                    if tool.timeout is not None:
                        with trio.fail_after(tool.timeout):
                            output = await tool.invoke(self.context, action.arguments)
                    else:
                        output = await tool.invoke(self.context, action.arguments)
                    error = False
                except trio.TooSlowError:
                    output = error_output(f"{tool.name} timed out after {tool.timeout} s")
                except ToolArgumentsError as exc:
                    output = error_output(str(exc))
                except Exception as exc:
                    output = error_output(f"{tool.name} failed: {type(exc).__name__}: {exc}")
        except trio.Cancelled:
            self._count_abandoned(tool)
            raise
        finally:
            self._call_scopes.pop(action.call_id, None)
            if action.call_id in self._protected:
                self._protected.discard(action.call_id)
                self._protected_changed.set()
        if scope.cancelled_caught:
            self._count_abandoned(tool)
            return
        self._execute(self._core.tool_finished(action.call_id, output, error=error))

    def _count_abandoned(self, tool: Tool) -> None:
        if tool.runs_in_thread and tool.cancel_on_interrupt:
            self._abandoned_threads += 1

    # -- channel input -----------------------------------------------------------------------------
    async def _read_channel_input(self) -> None:
        """Interrupts reach the core at once; audio queues for the microphone sender, so a
        barge-in never waits behind audio stuck in a slow socket. A full queue holds the
        channel back for at most ``MICROPHONE_STALL``; then, while the queue stays full,
        microphone input is dropped rather than left in front of the channel's interrupts."""
        assert self._user_channel is not None
        stalled = False
        async with self._mic_send:
            async for item in self._user_channel.input:
                if isinstance(item, ChannelInterrupt):
                    self._execute(self._core.interrupt("channel", trio.current_time()))
                    continue
                if isinstance(item, ChannelAudio):
                    event: ClientEvent = AudioInputAppend(item.audio)
                elif isinstance(item, ChannelCommit):
                    event = AudioInputCommit()
                else:
                    continue
                try:  # the channel's receive was this chunk's checkpoint
                    self._mic_send.send_nowait(event)
                    stalled = False
                    continue
                except trio.WouldBlock:
                    pass
                if not stalled:
                    with trio.move_on_after(MICROPHONE_STALL) as waited:
                        await self._mic_send.send(event)
                    stalled = waited.cancelled_caught
                if stalled:
                    self._microphone_dropped += 1

    async def _send_microphone(self, conn: RealtimeConnection) -> None:
        async with self._mic_receive:
            async for event in self._mic_receive:
                await conn.send(event)

    def _set_status(self, status: TransportStatus) -> None:
        previous, self._status = self._status, status
        if previous is not status:
            self._events.publish(StatusChanged(status, previous))


@asynccontextmanager
async def open_session(
    agent: RealtimeAgent,
    *,
    model: RealtimeModel | None = None,
    channel: RealtimeChannel | None = None,
    context: Context[Any] | None = None,
    transport: RealtimeTransport | None = None,
    credential: ClientCredential | None = None,
    connect_options: ConnectOptions | None = None,
    config: SessionConfig | None = None,
    answer_unknown_tools: bool = True,
) -> AsyncIterator[RealtimeSession]:
    """Open a realtime session for ``agent``; it lives exactly as long as the block.

    The block is entered once the server has confirmed the session's configuration (the
    agent's, with ``config``'s fields over it). Leaving the block (normally, by exception or
    by cancellation) cancels the session's tools, closes the channel and the connection, and
    joins every task. Errors come out as single typed exceptions (``ConnectionLost``,
    ``HandshakeFailed``, ``SessionRejected``, ``ConfigurationError``).
    """
    session = RealtimeSession(
        agent,
        model=model,
        channel=channel,
        context=context,
        transport=transport,
        credential=credential,
        connect_options=connect_options,
        config=config,
        answer_unknown_tools=answer_unknown_tools,
    )
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(session.run)
            try:
                yield session
            finally:
                session.close()
    except BaseExceptionGroup as group:
        raise collapse(group) from None


__all__ = [
    "CLOSE_GRACE",
    "MICROPHONE_BACKLOG",
    "ConfigurationError",
    "RealtimeSession",
    "SessionEvent",
    "SessionRejected",
    "SessionStatistics",
    "Subscription",
    "ToolOutput",
    "history_changes",
    "open_session",
]
