"""``RealtimeSession``: one conversation with a realtime model, as a tree of trio tasks.

    run()                    one nursery; leaving it joins everything
      ├─ connection          reader + writer tasks (inside the model's ``connect()``)
      ├─ router              server events -> turn state, playback, tools, subscribers
      ├─ channel input       microphone audio / commit / interrupt -> connection
      └─ turn                one cancel scope per assistant turn
           ├─ playback       the turn's audio deltas -> channel, paced by the channel
           └─ tool calls     one task per call

See docs/concepts.md for the interruption rules this module implements.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar, overload

import attrs
import orjson
import trio

from ._errors import collapse
from ._fanout import Broadcaster, SubscriberStatistics
from ._playback import AssumedPlayback
from ._turn import Call, Turn
from .context import Context
from .errors import ConfigurationError, ConnectionClosed, ConnectionLost, HandshakeFailed
from .model import (
    ChannelAudio,
    ChannelCommit,
    ChannelInterrupt,
    ConnectionEvent,
    ConnectOptions,
    RealtimeChannel,
    RealtimeConnection,
    RealtimeModel,
    RealtimeTransport,
    StatusChanged,
)
from .protocol import (
    PCM16_24K,
    AudioFormat,
    AudioInputAppend,
    AudioInputCommit,
    AudioOutputDelta,
    ClientCredential,
    ClientEvent,
    InputText,
    Item,
    ItemCreate,
    ItemDelete,
    ItemTruncate,
    ManualTurns,
    MessageItem,
    OutputAudio,
    ResponseCancel,
    ResponseConfig,
    ResponseCreate,
    ResponseCreated,
    ResponseDone,
    ResponseInterrupted,
    ServerEvent,
    SessionConfig,
    SessionCreated,
    SessionUpdate,
    SessionUpdated,
    SpeechStarted,
    ToolCall,
    ToolCancelled,
    ToolResult,
    TransportStatus,
)
from .tools import Tool, ToolArgumentsError

if TYPE_CHECKING:
    from .agent import RealtimeAgent


@attrs.frozen
class ToolOutput:
    """A tool call settled and its output went to the model."""

    kind = "tool.output"
    call_id: str
    name: str
    output: str
    error: bool = False


SessionEvent = ServerEvent | StatusChanged | ToolOutput
E = TypeVar("E", bound=SessionEvent)

CANCELLED_OUTPUT = orjson.dumps(
    {"error": "cancelled", "reason": "the user interrupted before the tool finished"}
).decode()


def _error_output(message: str) -> str:
    return orjson.dumps({"error": message}).decode()


@attrs.frozen
class SessionStatistics:
    late_audio_dropped: int
    interruptions: int
    subscribers: list[SubscriberStatistics]


class RealtimeSession:
    """A live voice conversation between an agent and a realtime model.

    Use :func:`open_session` (an async context manager), or ``await nursery.start(session.run)``
    when you own the nursery. Nothing the session starts outlives it.
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
    ) -> None:
        self.agent = agent
        self._tools: dict[str, Tool] = agent.all_tools()  # duplicate names fail here
        chosen = model if model is not None else agent.model
        if chosen is None:
            from .providers.openai import OpenAIRealtimeModel

            chosen = OpenAIRealtimeModel()
        self.model: RealtimeModel = chosen
        self.context: Context[Any] = context if context is not None else Context(None)
        self._transport = transport
        options = connect_options or ConnectOptions()
        if credential is not None:
            options = attrs.evolve(options, credential=credential)
        self._options = options
        self._user_channel = channel
        self._handles_audio = transport is not None and transport.handles_audio
        self.channel: RealtimeChannel = channel if channel is not None else AssumedPlayback()
        self.id: str | None = None
        self._status = TransportStatus.DISCONNECTED
        self._conn: RealtimeConnection | None = None
        self._nursery: trio.Nursery | None = None
        self._events: Broadcaster[SessionEvent] = Broadcaster()
        self._created = trio.Event()
        self._close_requested = trio.Event()
        self._closing = False
        self._started = False
        self._server_config = SessionConfig()
        self._turn: Turn | None = None
        self._last_turn: Turn | None = None
        self._active_response: str | None = None
        self._cancelled_responses: set[str] = set()
        self._cancel_next_response = False
        self._late_audio_dropped = 0
        self._interruptions = 0

    # -- state --------------------------------------------------------------------------------
    @property
    def status(self) -> TransportStatus:
        return self._status

    @property
    def muted(self) -> bool | None:
        return self._conn.muted if self._conn is not None else None

    @property
    def output_format(self) -> AudioFormat:
        """The format the model sends audio in (from the server's session config)."""
        return self._server_config.output_format or PCM16_24K

    def statistics(self) -> SessionStatistics:
        return SessionStatistics(
            self._late_audio_dropped, self._interruptions, self._events.statistics()
        )

    # -- lifecycle ------------------------------------------------------------------------------
    async def run(
        self, *, task_status: trio.TaskStatus[RealtimeSession] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Connect, configure, and serve the session until :meth:`close` (or an error).

        ``task_status.started(session)`` fires once the server has created the session.
        Raises single typed exceptions (``ConnectionLost``, ``HandshakeFailed``, ...).
        """
        if self._started:
            raise RuntimeError("a RealtimeSession runs once")
        self._started = True
        self._set_status(TransportStatus.CONNECTING)
        try:
            async with self._connect() as conn:
                self._conn = conn
                self._set_status(TransportStatus.CONNECTED)
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    self._events.bind(nursery)
                    nursery.start_soon(self._route, conn)
                    await self._handshake(conn)
                    if self._user_channel is not None and not self._handles_audio:
                        nursery.start_soon(self._pump_channel_input, conn)
                    task_status.started(self)
                    await self._close_requested.wait()
                    self._closing = True
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise collapse(group) from None
        finally:
            self._closing = True
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self.channel.aclose()
            self._set_status(TransportStatus.CLOSED)
            self._events.close()

    def close(self) -> None:
        """Ask the session to end: tools are cancelled, the channel and connection closed."""
        self._close_requested.set()

    def _connect(self) -> AbstractAsyncContextManager[RealtimeConnection]:
        if self._transport is not None:
            return self._transport.connect(self.model, self._options)
        return self.model.connect(self._options)

    async def _handshake(self, conn: RealtimeConnection) -> None:
        config = await self.agent.session_config(self.context)
        if self._user_channel is not None and not self._handles_audio:
            config = attrs.evolve(
                config,
                input_format=self._user_channel.input_format,
                output_format=self._user_channel.output_format,
            )
        await conn.send(SessionUpdate(config))
        with trio.move_on_after(self._options.connect_timeout) as waited:
            await self._created.wait()
        if waited.cancelled_caught:
            raise HandshakeFailed(
                f"the server sent no session.created within {self._options.connect_timeout} s"
            )

    # -- the application's side ------------------------------------------------------------------
    def events(self, buffer: int = 256) -> trio.MemoryReceiveChannel[SessionEvent]:
        """A stream of every session event from now on, for one consumer.

        Close it (``async with``) to unsubscribe. A slow consumer only delays its own stream;
        it ends cleanly when the session closes.
        """
        return self._events.subscribe(buffer)

    def event_batches(self) -> trio.MemoryReceiveChannel[list[SessionEvent]]:
        """The same events as :meth:`events`, for one consumer, as lists.

        Each receive returns every event published since the previous receive (at least
        one), in order: one checkpoint per list instead of per event, for a consumer that
        keeps up with audio bursts (a speaker writing many chunks at once). Nothing is
        dropped; a consumer that falls behind gets a longer list (``statistics()`` shows
        it). Close it (``async with``) to unsubscribe.
        """
        return self._events.subscribe_batches()

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

    async def send_message(self, message: str | MessageItem, *, respond: bool = True) -> None:
        """Add a user message to the conversation and (by default) ask for a response."""
        item = (
            message
            if isinstance(message, MessageItem)
            else MessageItem(role="user", content=(InputText(message),))
        )
        conn = self._connection()
        await conn.send(ItemCreate(item))
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
        """Answer a tool call yourself (for calls of tools the agent does not define)."""
        call_id = call if isinstance(call, str) else call.call_id
        conn = self._connection()
        await conn.send(ToolResult(call_id, output, error=error))
        if start_response:
            await conn.send(ResponseCreate())

    async def reset_history(self, old: Sequence[Item], new: Sequence[Item]) -> None:
        """Make the server's conversation match ``new``, given that it holds ``old``.

        Items of ``old`` missing from ``new`` are deleted; an assistant item whose audio in
        ``new`` is a prefix of its audio in ``old`` is truncated; changed items are replaced;
        items without an id, or with an unknown one, are created in place.
        """
        conn = self._connection()
        for event in history_changes(old, new, self.output_format):
            await conn.send(event)

    async def interrupt(self) -> None:
        """Interrupt the assistant now: the same path as a barge-in (see docs/concepts.md)."""
        self._interrupt("client")
        await trio.lowlevel.checkpoint()

    def report_played(self, item_id: str, played_ms: float) -> None:
        """Without a channel: tell the session how much of ``item_id`` you have played."""
        if not isinstance(self.channel, AssumedPlayback):
            raise ConfigurationError("report_played is for sessions without a channel")
        self.channel.report(item_id, played_ms)

    def mute(self) -> None:
        """Stop sending microphone audio to the model (the channel keeps running)."""
        self._connection().mute()

    def unmute(self) -> None:
        self._connection().unmute()

    def _connection(self) -> RealtimeConnection:
        if self._conn is None or self._status is TransportStatus.CLOSED:
            raise ConnectionClosed("the session is not connected")
        return self._conn

    # -- router ------------------------------------------------------------------------------
    async def _route(self, conn: RealtimeConnection) -> None:
        async for event in conn.events:
            await self._handle(event)
        if not self._closing:
            error = conn.close_error or ConnectionLost("the connection ended")
            raise error

    async def _handle(self, event: ConnectionEvent) -> None:
        if isinstance(event, AudioOutputDelta):
            self._on_audio(event)
            return
        if isinstance(event, StatusChanged):
            self._set_status(event.status)
            return
        if isinstance(event, ResponseCreated):
            await self._on_response_created(event)
        elif isinstance(event, SessionCreated):
            self.id = self.context.session_id = event.session.id
            self._server_config = event.session.config
            self._sync_assumed_format()
            self._created.set()
        elif isinstance(event, SessionUpdated):
            self._server_config = self._server_config.merged(event.session.config)
            self._sync_assumed_format()
        elif isinstance(event, SpeechStarted) and self._interrupt("server"):
            # The interruption's events went out first: a consumer stops its speaker on
            # ResponseInterrupted one event sooner. Then the router steps aside for two
            # scheduler passes, so the tasks the interruption woke (subscribers, the cancelled
            # turn, then the writer) run before it reads the response's late audio.
            self._events.publish(event)
            await trio.lowlevel.checkpoint()
            await trio.lowlevel.checkpoint()
            return
        self._events.publish(event)
        if isinstance(event, ResponseDone):
            self._on_response_done(event)
        elif isinstance(event, ToolCall):
            self._on_tool_call(event)

    def _on_audio(self, delta: AudioOutputDelta) -> None:
        if delta.response_id in self._cancelled_responses:
            self._late_audio_dropped += 1
            return
        turn = self._turn
        if (
            turn is not None
            and delta.response_id in turn.active_responses
            and not self._handles_audio
        ):
            if self._user_channel is None:
                # Nothing to play: account for it here, without a task switch per delta.
                turn.count_audio(delta)
                assert isinstance(self.channel, AssumedPlayback)
                self.channel.play_nowait(delta.audio, item_id=delta.item_id)
            else:
                turn.enqueue_audio(delta)
        self._events.publish(delta)

    async def _on_response_created(self, event: ResponseCreated) -> None:
        self._active_response = event.response_id
        if self._cancel_next_response:
            # A follow-up we asked for just before an interruption: it must not play.
            self._cancel_next_response = False
            self._cancelled_responses.add(event.response_id)
            self._connection().send_nowait(ResponseCancel(response_id=event.response_id))
            return
        turn = self._turn
        if turn is None or turn.finishing:
            turn = Turn(previous=self._last_turn)
            assert self._nursery is not None
            await self._nursery.start(self._run_turn, turn)
            self._turn = self._last_turn = turn
        turn.add_response(event.response_id)

    def _on_response_done(self, event: ResponseDone) -> None:
        if self._active_response == event.response_id:
            self._active_response = None
        turn = self._turn
        if turn is None or event.response_id not in turn.active_responses:
            return
        turn.active_responses.discard(event.response_id)
        self._settle_turn(turn)

    def _settle_turn(self, turn: Turn) -> None:
        if turn.ready_for_followup():
            turn.needs_followup = False
            turn.awaiting_followup = True
            self._connection().send_nowait(ResponseCreate())
        turn.try_finish()

    # -- turns -----------------------------------------------------------------------------------
    async def _run_turn(self, turn: Turn, *, task_status: trio.TaskStatus[None]) -> None:
        try:
            with turn.scope:
                async with trio.open_nursery() as nursery:
                    turn.nursery = nursery
                    task_status.started()
                    await self._play(turn)
        finally:
            turn.done.set()
            if self._turn is turn:
                self._turn = None

    async def _play(self, turn: Turn) -> None:
        if turn.previous is not None:
            await turn.previous.done.wait()  # one speaker: turns play in order
        async for delta in turn.audio_receive:
            await self.channel.play(
                delta.audio, item_id=delta.item_id, content_index=delta.content_index
            )
        await self.channel.wait_drained()

    # -- tools -----------------------------------------------------------------------------------
    def _on_tool_call(self, event: ToolCall) -> None:
        turn = self._turn
        if turn is None or turn.finishing or event.response_id in self._cancelled_responses:
            # A late call of a cancelled response (or of no live turn): answer it so the
            # conversation holds no call without output, but never run it.
            self._connection().send_nowait(ToolResult(event.call_id, CANCELLED_OUTPUT, error=True))
            self._events.publish(ToolCancelled(event.call_id, event.name, event.response_id))
            return
        tool = self._tools.get(event.name)
        call = Call(
            event.call_id,
            event.name,
            event.response_id,
            cancel_on_interrupt=tool.cancel_on_interrupt if tool is not None else True,
        )
        turn.calls[call.call_id] = call
        turn.needs_followup = True
        if tool is None:
            self._settle_call(turn, call, _error_output(f"unknown tool {event.name!r}"), True)
            return
        # Calls that must finish run outside the turn's scope, so an interruption spares them.
        nursery = turn.nursery if call.cancel_on_interrupt else self._nursery
        assert nursery is not None
        nursery.start_soon(self._run_tool, turn, call, tool, event.arguments)

    async def _run_tool(self, turn: Turn, call: Call, tool: Tool, arguments: str) -> None:
        error = True
        with trio.CancelScope() as call.scope:
            try:
                if tool.timeout is not None:
                    with trio.fail_after(tool.timeout):
                        output = await tool.invoke(self.context, arguments)
                else:
                    output = await tool.invoke(self.context, arguments)
                error = False
            except trio.TooSlowError:
                output = _error_output(f"{tool.name} timed out after {tool.timeout} s")
            except ToolArgumentsError as exc:
                output = _error_output(str(exc))
            except Exception as exc:
                output = _error_output(f"{tool.name} failed: {type(exc).__name__}: {exc}")
        if call.scope.cancelled_caught or call.settled:
            return
        self._settle_call(turn, call, output, error)

    def _settle_call(self, turn: Turn, call: Call, output: str, error: bool) -> None:
        call.settled = True
        self._connection().send_nowait(ToolResult(call.call_id, output, error=error))
        self._events.publish(ToolOutput(call.call_id, call.name, output, error))
        self._settle_turn(turn)

    # -- interruption ------------------------------------------------------------------------------
    def _interrupt(self, source: str) -> bool:
        """Everything an interruption does, in one scheduler pass (no checkpoint inside).

        Returns False when there was nothing to interrupt.
        """
        turn = self._turn
        if turn is None or turn.done.is_set():
            return False
        conn = self._connection()
        self._turn = None
        self._interruptions += 1
        turn.interrupted = True
        # What was heard, and what to cancel, before anything stops.
        played = {item: self.channel.played_ms(item) for item in turn.items}
        cancelled = [c for c in turn.unsettled_calls() if c.cancel_on_interrupt]
        active = self._active_response
        response_active = active is not None and active in turn.active_responses
        point = turn.truncation_point(played, self.output_format, response_active)
        # Subscribers learn it once (publishing never waits), first, so the application is
        # the first task the scheduler wakes.
        self._events.publish(
            ResponseInterrupted(
                response_id=turn.responses[-1] if turn.responses else None,
                item_id=point[0].item_id if point else None,
                played_ms=point[1] if point else None,
                cancelled_call_ids=tuple(c.call_id for c in cancelled),
                source=source,
            )
        )
        # 1. playback stops at the current chunk, queued audio is discarded, channel flushed
        turn.scope.cancel()
        self.channel.interrupt()
        # 2. pending calls are cancelled and answered; none will start a response
        for call in cancelled:
            call.settled = True
        if turn.awaiting_followup:
            self._cancel_next_response = True
        # 3. the model is told: cancel (unless the server does it itself), then truncate
        outgoing: list[ClientEvent] = []
        if response_active and not (source == "server" and self._server_cancels_on_speech()):
            outgoing.append(ResponseCancel(response_id=active))
        self._cancelled_responses.update(turn.responses)
        if point is not None:
            item, heard = point
            outgoing.append(ItemTruncate(item.item_id, heard, content_index=item.content_index))
        for call in cancelled:
            outgoing.append(ToolResult(call.call_id, CANCELLED_OUTPUT, error=True))
        for event in outgoing:
            conn.send_nowait(event)
        for call in cancelled:
            self._events.publish(ToolCancelled(call.call_id, call.name, call.response_id))
        return True

    def _server_cancels_on_speech(self) -> bool:
        detection = self._server_config.turn_detection
        if detection is None:
            return True  # the server's default: server_vad with interrupt_response
        if isinstance(detection, ManualTurns):
            return False
        return detection.interrupt_response is not False

    # -- channel input -----------------------------------------------------------------------------
    async def _pump_channel_input(self, conn: RealtimeConnection) -> None:
        assert self._user_channel is not None
        async for item in self._user_channel.input:
            if isinstance(item, ChannelAudio):
                await conn.send(AudioInputAppend(item.audio))
            elif isinstance(item, ChannelCommit):
                await conn.send(AudioInputCommit())
            elif isinstance(item, ChannelInterrupt):
                self._interrupt("channel")

    def _sync_assumed_format(self) -> None:
        if isinstance(self.channel, AssumedPlayback):
            self.channel.output_format = self.output_format

    def _set_status(self, status: TransportStatus) -> None:
        previous, self._status = self._status, status
        if previous is not status:
            self._events.publish(StatusChanged(status, previous))


def history_changes(
    old: Sequence[Item], new: Sequence[Item], output_format: AudioFormat
) -> list[ClientEvent]:
    """The client events that turn the conversation ``old`` into ``new`` (see reset_history)."""
    old_by_id = {item.id: item for item in old if item.id is not None}
    new_ids = {item.id for item in new if item.id is not None}
    events: list[ClientEvent] = [
        ItemDelete(item_id) for item_id in old_by_id if item_id not in new_ids
    ]
    previous: str | None = None
    for item in new:
        before = old_by_id.get(item.id) if item.id is not None else None
        if before is not None and before == item:
            previous = item.id
            continue
        if before is not None and item.id is not None:
            cut = _audio_cut_ms(before, item, output_format)
            if cut is not None:
                events.append(ItemTruncate(item.id, cut))
                previous = item.id
                continue
            events.append(ItemDelete(item.id))
        events.append(ItemCreate(item, previous_item_id=previous or "root"))
        previous = item.id
    return events


def _audio_cut_ms(before: Item, after: Item, output_format: AudioFormat) -> int | None:
    if not (isinstance(before, MessageItem) and isinstance(after, MessageItem)):
        return None
    if before.role != "assistant" or attrs.evolve(after, content=before.content) != before:
        return None
    for old_part, new_part in zip(before.content, after.content, strict=False):
        if (
            isinstance(old_part, OutputAudio)
            and isinstance(new_part, OutputAudio)
            and old_part.audio is not None
            and new_part.audio is not None
            and len(new_part.audio) < len(old_part.audio)
            and old_part.audio.startswith(new_part.audio)
        ):
            return math.floor(output_format.duration_ms(len(new_part.audio)))
    return None


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
) -> AsyncIterator[RealtimeSession]:
    """Open a realtime session for ``agent``; it lives exactly as long as the block.

    Leaving the block (normally, by exception or by cancellation) cancels the session's tools,
    closes the channel and the connection, and joins every task. Errors come out as single
    typed exceptions (``ConnectionLost``, ``HandshakeFailed``, ``ConfigurationError``).
    """
    session = RealtimeSession(
        agent,
        model=model,
        channel=channel,
        context=context,
        transport=transport,
        credential=credential,
        connect_options=connect_options,
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
    "ConfigurationError",
    "RealtimeSession",
    "SessionEvent",
    "SessionStatistics",
    "ToolOutput",
    "history_changes",
    "open_session",
]
