"""Random interleavings of server events, interrupts, tool results, playback and drops.

A small model of a GA server answers the core's client events; after every step the
invariants of the interruption rules are checked on everything the core has done.
The quick default profile runs 100 cases; the ``ci`` profile (``HYPOTHESIS_PROFILE=ci``,
which .ci/run sets) runs 10,000; ``KERNL_CORE_EXAMPLES`` sets any other number.
"""

from __future__ import annotations

import collections
import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from kernl_trio.core import (
    Action,
    CancelTurn,
    Conversation,
    EndTurnAudio,
    Play,
    Publish,
    Send,
    StartTool,
    StartTurn,
    ToolPolicy,
)
from kernl_trio.errors import CallAlreadyAnswered
from kernl_trio.protocol import (
    AudioOutputDelta,
    ItemTruncate,
    ResponseCancel,
    ResponseCreate,
    ResponseCreated,
    ResponseDone,
    ResponseStatus,
    ServerVAD,
    SessionConfig,
    SessionCreated,
    SessionInfo,
    SpeechStarted,
    ToolCall,
    ToolResult,
)

MS = 48
TOOLS = {"fast": ToolPolicy(), "protected": ToolPolicy(cancel_on_interrupt=False)}
_PROFILE_EXAMPLES = 10_000 if os.environ.get("HYPOTHESIS_PROFILE") == "ci" else 100
EXAMPLES = int(os.environ.get("KERNL_CORE_EXAMPLES", _PROFILE_EXAMPLES))


class FakePlayback:
    """A channel whose played position the machine moves (and may over-report)."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    def played_ms(self, item_id: str, now: float) -> float:
        return self.ms.get(item_id, 0.0)


class ConversationMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.ids = 0
        self.playback: FakePlayback | None = None
        self.core: Conversation | None = None
        # the server's side
        self.requested = 0  # response.create received and not yet answered
        self.active: str | None = None
        self.cancel_sent_for: set[str] = set()
        self.items: dict[str, str] = {}  # item -> response
        self.received_ms: collections.Counter[str] = collections.Counter()
        # what the core did
        self.response_turn: dict[str, int] = {}
        self.live_turn: int | None = None
        self.turns_open: set[int] = set()
        self.turns_cancelled: set[int] = set()
        self.turns_ended: set[int] = set()
        self.interrupted_responses: set[str] = set()
        self.calls: dict[str, str] = {}  # call -> tool
        self.call_turn: dict[str, int] = {}
        self.running: set[str] = set()
        self.outputs: collections.Counter[str] = collections.Counter()
        self.connected = True

    # -- plumbing ------------------------------------------------------------------------------
    def new_id(self, prefix: str) -> str:
        self.ids += 1
        return f"{prefix}{self.ids}"

    def apply(self, actions: list[Action], *, during: str) -> None:
        for action in actions:
            if isinstance(action, StartTurn):
                self.live_turn = action.turn
                self.turns_open.add(action.turn)
            elif isinstance(action, CancelTurn):
                self.turns_cancelled.add(action.turn)
                self.interrupted_responses.update(
                    r for r, t in self.response_turn.items() if t == action.turn
                )
                if self.live_turn == action.turn:
                    self.live_turn = None
            elif isinstance(action, EndTurnAudio):
                self.turns_ended.add(action.turn)
            elif isinstance(action, StartTool):
                self.running.add(action.call_id)
                self.call_turn[action.call_id] = action.turn
            elif isinstance(action, Play | Publish):
                event = action.delta if isinstance(action, Play) else action.event
                if isinstance(event, AudioOutputDelta):
                    assert event.response_id not in self.interrupted_responses, (
                        "audio of an interrupted response went out"
                    )
            elif isinstance(action, Send):
                self.on_client_event(action.event, during)

    def on_client_event(self, event: object, during: str) -> None:
        assert self.connected, f"{event!r} sent while disconnected"
        if isinstance(event, ResponseCreate):
            assert during != "interrupt", "an interruption asked for a response"
            assert self.active is None, "response.create while a response is active"
            self.requested += 1
        elif isinstance(event, ResponseCancel):
            if event.response_id is not None:
                self.cancel_sent_for.add(event.response_id)
        elif isinstance(event, ToolResult):
            self.outputs[event.call_id] += 1
            assert self.outputs[event.call_id] == 1, f"second output for {event.call_id}"
            self.running.discard(event.call_id)
        elif isinstance(event, ItemTruncate):
            received = self.received_ms[event.item_id]
            assert 0 < event.audio_end_ms <= received, "truncate past the audio received"
            if self.playback is not None:
                assert self.playback.ms.get(event.item_id, 0) > 0, "truncate of unheard item"

    # -- set-up ----------------------------------------------------------------------------
    @rule(
        channel=st.booleans(),
        server_cancels=st.sampled_from([None, True, False]),
    )
    @precondition(lambda self: self.core is None)
    def start(self, channel: bool, server_cancels: bool | None) -> None:
        self.playback = FakePlayback() if channel else None
        self.core = Conversation(TOOLS, playback=self.playback)
        vad = None if server_cancels is None else ServerVAD(interrupt_response=server_cancels)
        created = SessionCreated(SessionInfo("s", SessionConfig(turn_detection=vad)))
        self.apply(self.core.receive(created, self.now), during="server")

    def server(self, event: object) -> None:
        assert self.core is not None
        self.apply(self.core.receive(event, self.now), during="server")  # type: ignore[arg-type]

    # -- the server ------------------------------------------------------------------------
    @rule(spontaneous=st.booleans())
    @precondition(lambda self: self.core is not None and self.connected and self.active is None)
    def response_created(self, spontaneous: bool) -> None:
        if not spontaneous and self.requested == 0:
            return
        if not spontaneous:
            self.requested -= 1
        rid = self.new_id("r")
        self.active = rid
        before = self.live_turn
        assert self.core is not None
        actions = self.core.receive(ResponseCreated(rid), self.now)
        started = [a.turn for a in actions if isinstance(a, StartTurn)]
        cancelled_at_once = any(
            isinstance(a, Send) and isinstance(a.event, ResponseCancel) for a in actions
        )
        if cancelled_at_once:
            self.interrupted_responses.add(rid)
        elif started or before is not None:
            self.response_turn[rid] = started[0] if started else before  # type: ignore[assignment]
        self.apply(actions, during="server")

    @rule(ms=st.integers(1, 400), new_item=st.booleans())
    @precondition(lambda self: self.core is not None and self.active is not None)
    def audio(self, ms: int, new_item: bool) -> None:
        assert self.active is not None
        items = [i for i, r in self.items.items() if r == self.active]
        item = self.new_id("i") if new_item or not items else items[-1]
        self.items[item] = self.active
        if self.active not in self.interrupted_responses:
            self.received_ms[item] += ms
        self.server(AudioOutputDelta(self.active, item, b"\x00" * (MS * ms)))

    @rule(tool=st.sampled_from(["fast", "protected", "unknown"]))
    @precondition(lambda self: self.core is not None and self.active is not None)
    def tool_call(self, tool: str) -> None:
        assert self.active is not None
        call = self.new_id("c")
        self.calls[call] = tool
        self.server(ToolCall(call, tool, "{}", self.active))

    @rule(cancelled=st.booleans())
    @precondition(lambda self: self.core is not None and self.active is not None)
    def response_done(self, cancelled: bool) -> None:
        assert self.active is not None
        rid, self.active = self.active, None
        cancelled = cancelled or rid in self.cancel_sent_for
        status = ResponseStatus.CANCELLED if cancelled else ResponseStatus.COMPLETED
        self.server(ResponseDone(rid, status))

    @rule()
    @precondition(lambda self: self.core is not None and self.connected)
    def speech_started(self) -> None:
        self.server(SpeechStarted(self.new_id("u")))

    @rule()
    @precondition(lambda self: self.core is not None and self.active is not None)
    def late_audio_of_an_interrupted_response(self) -> None:
        for rid in sorted(self.interrupted_responses):
            self.server(AudioOutputDelta(rid, self.new_id("i"), b"\x00" * MS))
            return

    # -- the other inputs ------------------------------------------------------------------
    @rule(source=st.sampled_from(["client", "channel"]))
    @precondition(lambda self: self.core is not None and self.connected)
    def interrupt(self, source: str) -> None:
        assert self.core is not None
        self.apply(self.core.interrupt(source, self.now), during="interrupt")  # type: ignore[arg-type]

    @rule(data=st.data(), error=st.booleans())
    @precondition(lambda self: self.core is not None and bool(self.running))
    def tool_finishes(self, data: st.DataObject, error: bool) -> None:
        assert self.core is not None
        call = data.draw(st.sampled_from(sorted(self.running)))
        self.running.discard(call)
        during = "tool"
        if self.call_turn.get(call) in self.turns_cancelled:
            during = "interrupt"  # a cancelled call's turn never asks for a response
        self.apply(self.core.tool_finished(call, '"out"', error=error), during=during)

    @rule(data=st.data())
    @precondition(lambda self: self.core is not None and bool(self.calls) and self.connected)
    def application_answers(self, data: st.DataObject) -> None:
        assert self.core is not None
        call = data.draw(st.sampled_from(sorted(self.calls)))
        try:
            actions = self.core.answer_call(call, '"app"', start_response=False)
        except CallAlreadyAnswered:
            assert self.outputs[call] == 1
            return
        self.apply(actions, during="app")

    @rule(seconds=st.floats(0.001, 2.0), heard=st.floats(0, 3000), over=st.booleans())
    @precondition(lambda self: self.core is not None)
    def time_passes(self, seconds: float, heard: float, over: bool) -> None:
        self.now += seconds
        if self.playback is not None and self.received_ms:
            item = max(self.received_ms, key=lambda i: (self.items[i], i))
            limit = self.received_ms[item] * (2 if over else 1)
            self.playback.ms[item] = min(heard, limit)

    @rule(data=st.data())
    @precondition(lambda self: self.core is not None and bool(self.turns_open))
    def turn_done(self, data: st.DataObject) -> None:
        assert self.core is not None
        ready = sorted(self.turns_open & (self.turns_ended | self.turns_cancelled))
        if not ready:
            return
        turn = data.draw(st.sampled_from(ready))
        self.turns_open.discard(turn)
        if self.live_turn == turn:
            self.live_turn = None
        self.apply(self.core.turn_done(turn), during="playback")

    @rule()
    @precondition(lambda self: self.core is not None and self.connected)
    def disconnect(self) -> None:
        assert self.core is not None
        self.connected = False
        if self.active is not None:
            self.interrupted_responses.add(self.active)
        self.active = None
        self.requested = 0
        self.apply(self.core.disconnected(), during="interrupt")

    @rule()
    @precondition(lambda self: self.core is not None and not self.connected)
    def reconnect(self) -> None:
        assert self.core is not None
        self.connected = True
        self.apply(self.core.reconnected(), during="reconnect")

    # -- invariants ------------------------------------------------------------------------
    @invariant()
    def one_output_per_call_and_none_missing_unless_running(self) -> None:
        if self.core is None:
            return
        assert all(n <= 1 for n in self.outputs.values())
        for call in self.calls:
            if self.outputs[call] == 0 and self.connected:
                pending = self.core._calls
                assert call in pending, f"{call} has no output and is not pending"

    @invariant()
    def at_most_one_active_response(self) -> None:
        if self.core is not None and self.core.active_response is not None:
            assert self.core.active_response == self.active or self.active is None


ConversationMachine.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestConversation = ConversationMachine.TestCase
