"""The conversation rules as a state machine: inputs in, actions out, no I/O.

``Conversation`` takes decoded server events, interrupts (from the application, the channel
or the server), tool results, the application's own tool outputs, playback reports and
connection changes, each with the current time passed in. It returns the actions a driver
carries out in order (see ``_actions``). It never reads a clock, touches a socket or awaits:
the rules of docs/concepts.md live here, and its tests run in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal, Protocol

import attrs
import orjson

from ..errors import CallAlreadyAnswered
from ..protocol import (
    PCM16_24K,
    AudioFormat,
    AudioOutputDelta,
    ClientEvent,
    ItemTruncate,
    ManualTurns,
    RealtimeError,
    ResponseCancel,
    ResponseCreate,
    ResponseCreated,
    ResponseDone,
    ResponseInterrupted,
    ServerEvent,
    SessionConfig,
    SessionCreated,
    SessionError,
    SessionUpdate,
    SessionUpdated,
    SpeechStarted,
    ToolCall,
    ToolCancelled,
    ToolResult,
)
from ._actions import (
    Action,
    CancelTool,
    CancelTurn,
    Configured,
    EndTurnAudio,
    Play,
    Publish,
    Rejected,
    Send,
    StartTool,
    StartTurn,
    ToolOutput,
)
from ._timeline import AssumedTimeline
from ._turn import Call, Turn

InterruptSource = Literal["client", "channel", "server"]

CANCELLED_OUTPUT = orjson.dumps(
    {"error": "cancelled", "reason": "the user interrupted before the tool finished"}
).decode()
DISCONNECTED_OUTPUT = orjson.dumps(
    {"error": "cancelled", "reason": "the connection dropped before the tool finished"}
).decode()


def error_output(message: str) -> str:
    return orjson.dumps({"error": sendable_text(message)}).decode()


def sendable_text(text: str) -> str:
    """``text`` with lone surrogates written as ``\\udXXX``: they cannot go into a UTF-8
    frame, and a tool's output may echo one the model sent in its arguments (a JSON
    ``"\\ud800"`` escape decodes to one)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text


class PlaybackView(Protocol):
    """Where playback is: milliseconds of ``item_id`` the user has really heard."""

    def played_ms(self, item_id: str, now: float) -> float: ...


@attrs.frozen
class ChannelPlayback:
    """A :class:`PlaybackView` over a channel's own ``played_ms(item_id)``."""

    played: Callable[[str], float]

    def played_ms(self, item_id: str, now: float) -> float:
        return self.played(item_id)


@attrs.frozen
class ToolPolicy:
    """What the core needs to know of a tool: whether an interruption cancels it."""

    cancel_on_interrupt: bool = True


@attrs.frozen
class CoreStatistics:
    late_audio_dropped: int
    interruptions: int
    answered_calls: int


class Conversation:
    """One conversation's rules: turns, interruption, tool settlement, truncation.

    ``tools`` maps the agent's tool names to their policy. A call of any other name is
    answered with an error, or, with ``answer_unknown_tools=False``, left to the application
    (``answer_call``; the turn waits for it, and an interruption cancels it).
    ``playback`` says where playback is; without one the core keeps an
    :class:`AssumedTimeline` itself. ``plays_audio`` is False when audio flows outside the
    session (a transport that handles it): nothing is queued, counted or truncated.
    """

    def __init__(
        self,
        tools: Mapping[str, ToolPolicy],
        *,
        playback: PlaybackView | None = None,
        plays_audio: bool = True,
        answer_unknown_tools: bool = True,
    ) -> None:
        self._tools = dict(tools)
        self._answer_unknown = answer_unknown_tools
        self.timeline: AssumedTimeline | None
        self._playback: PlaybackView
        if playback is None:
            self.timeline = self._playback = AssumedTimeline()
        else:
            self.timeline, self._playback = None, playback
        self._plays_audio = plays_audio
        self.config = SessionConfig()
        self.session_id: str | None = None
        self._created = False
        self._configuring = False
        self._configured = False
        self._turn_ids = 0
        self.turn: Turn | None = None  # the turn that new responses join
        self._last_turn: int | None = None  # the turn a new one plays after
        self.active_response: str | None = None
        self._cancelled_responses: set[str] = set()
        self._cancel_next_response = False
        self._calls: dict[str, Call] = {}  # unsettled calls, of any turn
        self._answered: set[str] = set()
        self._owed: list[ToolResult] = []  # outputs decided while disconnected
        self._connected = True
        self._late_audio_dropped = 0
        self._interruptions = 0

    # -- queries ---------------------------------------------------------------------------
    @property
    def output_format(self) -> AudioFormat:
        """The format the model sends audio in (from the server's session config)."""
        return self.config.output_format or PCM16_24K

    @property
    def configured(self) -> bool:
        return self._configured

    def answered(self, call_id: str) -> bool:
        return call_id in self._answered

    def statistics(self) -> CoreStatistics:
        return CoreStatistics(self._late_audio_dropped, self._interruptions, len(self._answered))

    # -- application calls -----------------------------------------------------------------
    def configure(self, config: SessionConfig) -> list[Action]:
        """The session's first configuration: confirmed by the server's ``session.updated``."""
        self._configuring = True
        return [Send(SessionUpdate(config))]

    def answer_call(
        self, call_id: str, output: str, *, error: bool = False, start_response: bool = True
    ) -> list[Action]:
        """The application answers a call itself; a running tool for it is cancelled.

        Raises :class:`CallAlreadyAnswered` for a call that already has an output.
        """
        if call_id in self._answered:
            raise CallAlreadyAnswered(f"call {call_id!r} already has an output")
        call = self._calls.get(call_id)
        if call is None:
            self._answered.add(call_id)
            actions: list[Action] = [Send(ToolResult(call_id, output, error=error))]
            if start_response and self.active_response is None:
                actions.append(Send(ResponseCreate()))
            return actions
        actions = [CancelTool(call_id)]
        turn = self._live_turn(call.turn)
        if turn is not None and not start_response:
            turn.needs_followup = False
        return actions + self._settle(call, output, error)

    def set_tools(self, tools: Mapping[str, ToolPolicy]) -> None:
        """Calls from now on are judged against ``tools`` (an agent handoff); calls already
        running keep the policy they started with."""
        self._tools = dict(tools)

    def report_played(self, item_id: str, played_ms: float) -> None:
        """Without a channel: what the application has really played of ``item_id``."""
        if self.timeline is None:
            raise ValueError("report_played is for a core that keeps its own timeline")
        self.timeline.report(item_id, played_ms)

    # -- interruption ----------------------------------------------------------------------
    def interrupt(self, source: InterruptSource, now: float) -> list[Action]:
        """Everything an interruption does, as one list of actions.

        Empty when there is nothing to interrupt (no turn, or its playback already ended).
        """
        turn = self.turn
        if turn is None:
            return []
        self.turn = None
        self._interruptions += 1
        turn.interrupted = True
        played = {item: self._playback.played_ms(item, now) for item in turn.items}
        if self.timeline is not None:
            self.timeline.interrupt(now)
        cancelled = [c for c in turn.unsettled_calls() if c.cancel_on_interrupt]
        active = self.active_response
        response_active = active is not None and active in turn.active_responses
        point = turn.truncation_point(played, self.output_format, response_active)
        actions: list[Action] = [
            # first, so the application is the first task woken
            Publish(
                ResponseInterrupted(
                    response_id=turn.responses[-1] if turn.responses else None,
                    item_id=point[0].item_id if point else None,
                    played_ms=point[1] if point else None,
                    cancelled_call_ids=tuple(c.call_id for c in cancelled),
                    source=source,
                )
            ),
            CancelTurn(turn.id),
        ]
        actions.extend(CancelTool(c.call_id) for c in cancelled)
        if turn.awaiting_followup:
            self._cancel_next_response = True
            turn.awaiting_followup = False
        turn.needs_followup = False
        if response_active and not (source == "server" and self._server_cancels_on_speech()):
            actions.append(Send(ResponseCancel(response_id=active)))
        self._cancelled_responses.update(turn.responses)
        if point is not None:
            item, heard = point
            actions.append(
                Send(ItemTruncate(item.item_id, heard, content_index=item.content_index))
            )
        for call in cancelled:
            actions.extend(self._close_call(call, CANCELLED_OUTPUT))
        for call in cancelled:
            actions.append(Publish(ToolCancelled(call.call_id, call.name, call.response_id)))
        return actions

    # -- tools -------------------------------------------------------------------------------
    def tool_finished(self, call_id: str, output: str, *, error: bool = False) -> list[Action]:
        """A tool task finished (its output is ignored if the call was already settled)."""
        call = self._calls.get(call_id)
        if call is None:
            return []
        return self._settle(call, output, error)

    # -- playback ----------------------------------------------------------------------------
    def turn_done(self, turn_id: int) -> list[Action]:
        """The driver's turn task ended: its audio was heard, flushed or cancelled."""
        if self.turn is not None and self.turn.id == turn_id:
            self.turn = None
        return []

    # -- connection --------------------------------------------------------------------------
    def disconnected(self) -> list[Action]:
        """The connection dropped: nothing of the old responses can arrive or be heard.

        Calls that can be cancelled are; their outputs are owed and go out on ``reconnected``.
        """
        self._connected = False
        actions: list[Action] = []
        turn = self.turn
        if turn is not None:
            self.turn = None
            turn.interrupted = True
            turn.needs_followup = turn.awaiting_followup = False
            self._cancelled_responses.update(turn.responses)
            actions.append(CancelTurn(turn.id))
        if self.timeline is not None:
            self.timeline.end = -float("inf")
        for call in [c for c in self._calls.values() if c.cancel_on_interrupt]:
            actions.append(CancelTool(call.call_id))
            actions.extend(self._close_call(call, DISCONNECTED_OUTPUT))
            actions.append(
                Publish(ToolCancelled(call.call_id, call.name, call.response_id, "disconnected"))
            )
        self.active_response = None
        self._cancel_next_response = False
        return actions

    def reconnected(self) -> list[Action]:
        """A new connection carries the conversation on: owed outputs go out first."""
        self._connected = True
        owed, self._owed = self._owed, []
        return [Send(result) for result in owed]

    # -- server events -----------------------------------------------------------------------
    def receive(self, event: ServerEvent, now: float) -> list[Action]:
        """One decoded server event, in arrival order."""
        if isinstance(event, AudioOutputDelta):
            return self._on_audio(event, now)
        if isinstance(event, ResponseCreated):
            return self._on_response_created(event)
        if isinstance(event, SpeechStarted):
            return [*self.interrupt("server", now), Publish(event)]
        if isinstance(event, ResponseDone):
            return [Publish(event), *self._on_response_done(event, now)]
        if isinstance(event, ToolCall):
            return [Publish(event), *self._on_tool_call(event, now)]
        if isinstance(event, SessionCreated):
            self.session_id = event.session.id
            self._created = True
            return self._on_config(event, event.session.config, replace=True)
        if isinstance(event, SessionUpdated):
            return self._on_config(event, event.session.config, replace=False)
        if isinstance(event, SessionError) and self._configuring and not self._configured:
            self._configuring = False
            return [Publish(event), Rejected(event.error)]
        return [Publish(event)]

    def _on_config(
        self, event: SessionCreated | SessionUpdated, config: SessionConfig, *, replace: bool
    ) -> list[Action]:
        actions: list[Action] = [Publish(event)]
        unusable: dict[str, None] = {}
        problems: list[str] = []
        for name in ("input_format", "output_format"):
            fmt: AudioFormat | None = getattr(config, name)
            if fmt is not None and fmt.rate <= 0:
                unusable[name] = None
                problems.append(f"{name} {fmt.encoding} at {fmt.rate} Hz")
        if problems:
            # Keep the format we had: every duration is a division by the rate.
            config = attrs.evolve(config, **unusable)
            message = "the server sent an unusable audio format: " + ", ".join(problems)
            actions.append(Publish(SessionError(RealtimeError(message, type="invalid_config"))))
        self.config = config if replace else self.config.merged(config)
        if self.timeline is not None:
            self.timeline.output_format = self.output_format
        if (
            isinstance(event, SessionUpdated)
            and self._configuring
            and self._created
            and not self._configured
        ):
            self._configured = True
            self._configuring = False
            actions.append(Configured(self.session_id))
        return actions

    def _on_audio(self, delta: AudioOutputDelta, now: float) -> list[Action]:
        if delta.response_id in self._cancelled_responses:
            self._late_audio_dropped += 1
            return []
        turn = self.turn
        if turn is not None and delta.response_id in turn.active_responses and self._plays_audio:
            turn.count_audio(delta.item_id, delta.content_index, len(delta.audio))
            if self.timeline is not None:
                self.timeline.play(delta.item_id, len(delta.audio), now)
            else:
                return [Play(turn.id, delta), Publish(delta)]
        return [Publish(delta)]

    def _on_response_created(self, event: ResponseCreated) -> list[Action]:
        self.active_response = event.response_id
        actions: list[Action] = []
        if self._cancel_next_response:
            # A follow-up asked for just before an interruption: it must not play.
            self._cancel_next_response = False
            self._cancelled_responses.add(event.response_id)
            return [Send(ResponseCancel(response_id=event.response_id)), Publish(event)]
        turn = self.turn
        if turn is None or turn.finishing:
            self._turn_ids += 1
            turn = self.turn = Turn(self._turn_ids)
            actions.append(StartTurn(turn.id, self._last_turn))
            self._last_turn = turn.id
        turn.add_response(event.response_id)
        actions.append(Publish(event))
        return actions

    def _on_response_done(self, event: ResponseDone, now: float) -> list[Action]:
        if self.active_response == event.response_id:
            self.active_response = None
        turn = self.turn
        if turn is None or event.response_id not in turn.active_responses:
            return []
        turn.active_responses.discard(event.response_id)
        return self._settle_turn(turn, now)

    def _on_tool_call(self, event: ToolCall, now: float) -> list[Action]:
        if event.call_id in self._answered or event.call_id in self._calls:
            return []  # a repeated call.done: it has (or will have) its one output
        turn = self.turn
        if turn is None or turn.finishing or event.response_id in self._cancelled_responses:
            # A late call of a cancelled response (or of no live turn): answer it so the
            # conversation holds no call without output, but never run it.
            call = Call(event.call_id, event.name, event.response_id, turn=-1)
            return [
                *self._close_call(call, CANCELLED_OUTPUT),
                Publish(ToolCancelled(event.call_id, event.name, event.response_id)),
            ]
        policy = self._tools.get(event.name)
        call = Call(
            event.call_id,
            event.name,
            event.response_id,
            turn=turn.id,
            cancel_on_interrupt=policy.cancel_on_interrupt if policy is not None else True,
        )
        turn.calls[call.call_id] = call
        self._calls[call.call_id] = call
        turn.needs_followup = True
        if policy is None:
            if not self._answer_unknown:
                return []  # the application answers it (answer_call)
            return self._settle(call, error_output(f"unknown tool {event.name!r}"), True, now)
        return [
            StartTool(call.call_id, call.name, event.arguments, turn.id, call.cancel_on_interrupt)
        ]

    def _settle(
        self, call: Call, output: str, error: bool, now: float | None = None
    ) -> list[Action]:
        actions = self._close_call(call, output, error)
        if not self._connected:
            return actions
        actions.append(Publish(ToolOutput(call.call_id, call.name, output, error)))
        turn = self._live_turn(call.turn)
        if turn is not None:
            actions.extend(self._settle_turn(turn, now))
        return actions

    def _close_call(self, call: Call, output: str, error: bool = True) -> list[Action]:
        """Give ``call`` its one output (queued, or owed while disconnected)."""
        call.settled = True
        self._calls.pop(call.call_id, None)
        self._answered.add(call.call_id)
        result = ToolResult(call.call_id, sendable_text(output), error=error)
        if not self._connected:
            self._owed.append(result)
            return []
        return [Send(result)]

    def _settle_turn(self, turn: Turn, now: float | None) -> list[Action]:
        actions: list[Action] = []
        if turn.ready_for_followup():
            turn.needs_followup = False
            turn.awaiting_followup = True
            actions.append(Send(ResponseCreate()))
        if turn.can_finish():
            turn.finishing = True
            drain = None
            if self.timeline is not None:
                drain = self.timeline.end if now is None else max(self.timeline.end, now)
            actions.append(EndTurnAudio(turn.id, drain))
        return actions

    def _live_turn(self, turn_id: int) -> Turn | None:
        turn = self.turn
        return turn if turn is not None and turn.id == turn_id else None

    def _server_cancels_on_speech(self) -> bool:
        detection = self.config.turn_detection
        if detection is None:
            return True  # the server's default: server_vad with interrupt_response
        if isinstance(detection, ManualTurns):
            return False
        return detection.interrupt_response is not False


def client_events(actions: list[Action]) -> list[ClientEvent]:
    """The client events among ``actions``, in order (for tests and tracing)."""
    return [a.event for a in actions if isinstance(a, Send)]
