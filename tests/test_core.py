"""The conversation core in memory: no trio, no sockets, no clock (times are passed in)."""

from __future__ import annotations

import subprocess
import sys

import attrs
import pytest

from kernl_trio.core import (
    CANCELLED_OUTPUT,
    Action,
    CancelTool,
    CancelTurn,
    Configured,
    Conversation,
    EndTurnAudio,
    Play,
    Publish,
    Rejected,
    StartTool,
    StartTurn,
    ToolOutput,
    ToolPolicy,
    client_events,
)
from kernl_trio.errors import CallAlreadyAnswered
from kernl_trio.protocol import (
    PCMU_8K,
    AudioEncoding,
    AudioFormat,
    AudioOutputDelta,
    ItemTruncate,
    ManualTurns,
    RealtimeError,
    ResponseCancel,
    ResponseCreate,
    ResponseCreated,
    ResponseDone,
    ResponseInterrupted,
    ResponseStatus,
    ServerVAD,
    SessionConfig,
    SessionCreated,
    SessionError,
    SessionInfo,
    SessionUpdated,
    SpeechStarted,
    ToolCall,
    ToolCancelled,
    ToolResult,
)

MS = 48  # bytes of 24 kHz PCM16 per millisecond


class Played:
    """A channel's playback position, set by the test."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    def played_ms(self, item_id: str, now: float) -> float:
        return self.ms.get(item_id, 0.0)


def core(
    *, played: Played | None = None, server_cancels: bool | None = None, **tools: ToolPolicy
) -> Conversation:
    conversation = Conversation(tools, playback=played)
    detection = None if server_cancels is None else ServerVAD(interrupt_response=server_cancels)
    conversation.receive(
        SessionCreated(SessionInfo("s", SessionConfig(turn_detection=detection))), 0
    )
    return conversation


def audio(rid: str, item: str, ms: int, content_index: int = 0) -> AudioOutputDelta:
    return AudioOutputDelta(rid, item, b"\x00" * (MS * ms), content_index)


def done(rid: str, status: ResponseStatus = ResponseStatus.COMPLETED) -> ResponseDone:
    return ResponseDone(rid, status)


def published(actions: list[Action]) -> list[object]:
    return [a.event for a in actions if isinstance(a, Publish)]


def test_a_response_opens_a_turn_that_plays_and_finishes() -> None:
    c = core(played=Played())
    first = c.receive(ResponseCreated("r1"), 0)
    assert first[0] == StartTurn(1, None)
    delta = audio("r1", "i1", 100)
    assert c.receive(delta, 0) == [Play(1, delta), Publish(delta)]
    assert c.receive(done("r1"), 0)[1:] == [EndTurnAudio(1)]
    assert c.turn_done(1) == []
    assert c.turn is None
    # the next response is a new turn that plays after the first
    assert c.receive(ResponseCreated("r2"), 1)[0] == StartTurn(2, 1)


def test_nothing_to_interrupt_is_nothing() -> None:
    c = core(played=Played())
    assert c.interrupt("client", 0) == []
    assert c.statistics().interruptions == 0


@pytest.mark.parametrize("server_cancels", [True, False])
def test_server_barge_in_truncates_what_was_heard(server_cancels: bool) -> None:
    played = Played()
    c = core(played=played, server_cancels=server_cancels)
    c.receive(ResponseCreated("r1"), 0)
    c.receive(audio("r1", "i1", 3000), 0)
    played.ms["i1"] = 1500.7
    actions = c.receive(SpeechStarted("u1"), 1.5)
    sent = client_events(actions)
    cancel = [] if server_cancels else [ResponseCancel(response_id="r1")]
    assert sent == [*cancel, ItemTruncate("i1", 1500)]
    interrupted = published(actions)
    assert interrupted[0] == ResponseInterrupted("r1", "i1", 1500, (), "server")
    assert interrupted[-1] == SpeechStarted("u1")  # after the interruption
    assert CancelTurn(1) in actions


def test_manual_turns_always_send_the_cancel() -> None:
    c = Conversation({}, playback=Played())
    config = SessionConfig(turn_detection=ManualTurns())
    c.receive(SessionCreated(SessionInfo("s", config)), 0)
    c.receive(ResponseCreated("r1"), 0)
    assert ResponseCancel(response_id="r1") in client_events(c.receive(SpeechStarted(), 0))


def test_client_interrupt_always_cancels_the_active_response() -> None:
    c = core(played=Played(), server_cancels=True)
    c.receive(ResponseCreated("r1"), 0)
    assert client_events(c.interrupt("client", 0)) == [ResponseCancel(response_id="r1")]


def test_nothing_played_means_no_truncate() -> None:
    c = core(played=Played())
    c.receive(ResponseCreated("r1"), 0)
    c.receive(audio("r1", "i1", 500), 0)
    actions = c.interrupt("channel", 0)
    assert not any(isinstance(e, ItemTruncate) for e in client_events(actions))
    assert published(actions)[0] == ResponseInterrupted("r1", None, None, (), "channel")


def test_played_past_received_is_capped_at_received() -> None:
    played = Played()
    c = core(played=played)
    c.receive(ResponseCreated("r1"), 0)
    c.receive(audio("r1", "i1", 700), 0)
    played.ms["i1"] = 5000  # a channel that over-reports
    truncates = [e for e in client_events(c.interrupt("client", 0)) if isinstance(e, ItemTruncate)]
    assert truncates == [ItemTruncate("i1", 700)]


def test_audio_played_to_the_end_of_a_done_response_is_not_truncated() -> None:
    played = Played()
    c = core(played=played)
    c.receive(ResponseCreated("r1"), 0)
    c.receive(audio("r1", "i1", 400), 0)
    c.receive(done("r1"), 0)
    played.ms["i1"] = 400
    actions = c.interrupt("client", 0.4)
    assert client_events(actions) == []  # nothing active, nothing cut
    assert published(actions)[0] == ResponseInterrupted("r1", None, None, (), "client")


def test_truncate_names_the_item_being_heard_and_its_content_index() -> None:
    played = Played()
    c = core(played=played)
    c.receive(ResponseCreated("r1"), 0)
    c.receive(audio("r1", "i1", 400), 0)
    c.receive(audio("r1", "i2", 400, content_index=1), 0)
    played.ms.update(i1=400, i2=120)
    sent = client_events(c.interrupt("client", 0.52))
    assert ItemTruncate("i2", 120, content_index=1) in sent


def test_late_audio_of_an_interrupted_response_is_dropped_and_counted() -> None:
    c = core(played=Played())
    c.receive(ResponseCreated("r1"), 0)
    c.interrupt("client", 0)
    assert c.receive(audio("r1", "i1", 20), 0) == []
    assert c.statistics().late_audio_dropped == 1


def test_tool_calls_settle_then_one_follow_up() -> None:
    c = core(played=Played(), lookup=ToolPolicy())
    c.receive(ResponseCreated("r1"), 0)
    starts = [c.receive(ToolCall(f"c{n}", "lookup", "{}", "r1"), 0)[-1] for n in (1, 2)]
    assert starts == [StartTool(f"c{n}", "lookup", "{}", 1, True) for n in (1, 2)]
    assert client_events(c.receive(done("r1"), 0)) == []  # calls still running
    first = c.tool_finished("c1", '"a"')
    assert client_events(first) == [ToolResult("c1", '"a"')]
    assert ToolOutput("c1", "lookup", '"a"') in published(first)
    second = client_events(c.tool_finished("c2", '"b"'))
    assert second == [ToolResult("c2", '"b"'), ResponseCreate()]
    # the follow-up joins the same turn
    assert not any(isinstance(a, StartTurn) for a in c.receive(ResponseCreated("r2"), 0))


def test_unknown_tool_is_answered_with_an_error() -> None:
    c = core(played=Played())
    c.receive(ResponseCreated("r1"), 0)
    [result] = client_events(c.receive(ToolCall("c1", "nope", "{}", "r1"), 0))
    assert isinstance(result, ToolResult) and result.error and "unknown tool" in result.output


def test_unknown_tool_left_to_the_application() -> None:
    c = Conversation({}, playback=Played(), answer_unknown_tools=False)
    c.receive(ResponseCreated("r1"), 0)
    assert client_events(c.receive(ToolCall("c1", "ext", "{}", "r1"), 0)) == []
    c.receive(done("r1"), 0)
    answer = client_events(c.answer_call("c1", "ok"))
    assert answer == [ToolResult("c1", "ok"), ResponseCreate()]
    with pytest.raises(CallAlreadyAnswered):
        c.answer_call("c1", "again")


def test_the_application_answering_a_running_call_cancels_its_tool() -> None:
    c = core(played=Played(), lookup=ToolPolicy())
    c.receive(ResponseCreated("r1"), 0)
    c.receive(ToolCall("c1", "lookup", "{}", "r1"), 0)
    actions = c.answer_call("c1", "mine", start_response=False)
    assert actions[0] == CancelTool("c1")
    assert client_events(actions) == [ToolResult("c1", "mine")]
    assert c.tool_finished("c1", "the tool's") == []  # its late output is ignored


def test_interrupt_cancels_calls_and_none_starts_a_response() -> None:
    c = core(played=Played(), lookup=ToolPolicy(), pay=ToolPolicy(cancel_on_interrupt=False))
    c.receive(ResponseCreated("r1"), 0)
    c.receive(ToolCall("c1", "lookup", "{}", "r1"), 0)
    c.receive(ToolCall("c2", "pay", "{}", "r1"), 0)
    c.receive(done("r1"), 0)
    actions = c.interrupt("client", 0)
    assert published(actions)[0] == ResponseInterrupted("r1", None, None, ("c1",), "client")
    assert CancelTool("c1") in actions and CancelTool("c2") not in actions
    assert ToolResult("c1", CANCELLED_OUTPUT, error=True) in client_events(actions)
    assert ToolCancelled("c1", "lookup", "r1") in published(actions)
    assert c.tool_finished("c1", "late") == []
    # the protected call finishes later: its output goes out, no response follows
    assert client_events(c.tool_finished("c2", "paid")) == [ToolResult("c2", "paid")]


def test_follow_up_already_requested_is_cancelled_when_it_appears() -> None:
    c = core(played=Played(), lookup=ToolPolicy())
    c.receive(ResponseCreated("r1"), 0)
    c.receive(ToolCall("c1", "lookup", "{}", "r1"), 0)
    c.receive(done("r1"), 0)
    assert ResponseCreate() in client_events(c.tool_finished("c1", "x"))
    c.interrupt("client", 0)
    follow_up = c.receive(ResponseCreated("r2"), 0)
    assert client_events(follow_up) == [ResponseCancel(response_id="r2")]
    assert not any(isinstance(a, StartTurn) for a in follow_up)
    assert c.receive(audio("r2", "i9", 20), 0) == []  # never played


def test_a_late_call_of_a_cancelled_response_is_answered_not_run() -> None:
    c = core(played=Played(), lookup=ToolPolicy())
    c.receive(ResponseCreated("r1"), 0)
    c.interrupt("client", 0)
    actions = c.receive(ToolCall("c1", "lookup", "{}", "r1"), 0)
    assert not any(isinstance(a, StartTool) for a in actions)
    assert client_events(actions) == [ToolResult("c1", CANCELLED_OUTPUT, error=True)]


def test_assumed_timeline_without_a_channel() -> None:
    c = core()
    c.receive(ResponseCreated("r1"), 10.0)
    c.receive(audio("r1", "i1", 2000), 10.0)
    assert [a for a in c.receive(done("r1"), 10.0) if isinstance(a, EndTurnAudio)] == [
        EndTurnAudio(1, drain_until=12.0)
    ]
    assert ItemTruncate("i1", 750) in client_events(c.interrupt("client", 10.75))
    c2 = core()
    c2.receive(ResponseCreated("r1"), 0)
    c2.receive(audio("r1", "i1", 2000), 0)
    c2.report_played("i1", 321)
    assert ItemTruncate("i1", 321) in client_events(c2.interrupt("client", 1.9))


def test_initial_configuration_is_confirmed_or_rejected() -> None:
    c = Conversation({})
    config = SessionConfig(voice="marin")
    assert client_events(c.configure(config))[0].config == config  # type: ignore[union-attr]
    c.receive(SessionCreated(SessionInfo("sess_1", SessionConfig())), 0)
    assert Configured("sess_1") in c.receive(SessionUpdated(SessionInfo("sess_1", config)), 0)
    assert c.configured and c.config.voice == "marin"

    refused = Conversation({})
    refused.configure(config)
    refused.receive(SessionCreated(SessionInfo("s", SessionConfig())), 0)
    error = RealtimeError("bad voice", type="invalid_request_error")
    assert Rejected(error) in refused.receive(SessionError(error), 0)


def test_an_unusable_output_rate_is_an_error_event_and_the_format_stays() -> None:
    c = core(played=Played())
    c.receive(SessionUpdated(SessionInfo("s", SessionConfig(output_format=PCMU_8K))), 0)
    broken = AudioFormat(AudioEncoding.PCM16, 0)
    actions = c.receive(SessionUpdated(SessionInfo("s", SessionConfig(output_format=broken))), 0)
    [error] = [e for e in published(actions) if isinstance(e, SessionError)]
    assert error.error.type == "invalid_config"
    assert c.output_format == PCMU_8K
    c.receive(ResponseCreated("r1"), 0)
    c.receive(audio("r1", "i1", 10), 0)
    c.interrupt("client", 0)  # arithmetic on the kept format: no ZeroDivisionError


def test_disconnect_owes_outputs_until_reconnected() -> None:
    c = core(played=Played(), lookup=ToolPolicy(), pay=ToolPolicy(cancel_on_interrupt=False))
    c.receive(ResponseCreated("r1"), 0)
    c.receive(ToolCall("c1", "lookup", "{}", "r1"), 0)
    c.receive(ToolCall("c2", "pay", "{}", "r1"), 0)
    lost = c.disconnected()
    assert CancelTurn(1) in lost and CancelTool("c1") in lost
    assert client_events(lost) == []  # nothing can be sent now
    assert client_events(c.tool_finished("c2", "paid")) == []
    owed = client_events(c.reconnected())
    assert [r.call_id for r in owed if isinstance(r, ToolResult)] == ["c1", "c2"]
    assert c.receive(audio("r1", "i1", 20), 0) == []  # the old response is gone


def test_a_repeated_tool_call_event_is_ignored() -> None:
    c = core(played=Played(), lookup=ToolPolicy())
    c.receive(ResponseCreated("r1"), 0)
    call = ToolCall("c1", "lookup", "{}", "r1")
    c.receive(call, 0)
    assert c.receive(call, 0) == [Publish(call)]
    assert attrs.asdict(c.statistics())["answered_calls"] == 0


def test_the_core_imports_no_trio_no_sockets_no_clock() -> None:
    code = (
        "import sys, time\n"
        "time.monotonic = time.perf_counter = time.time = None\n"  # a clock read would fail
        "import kernl_trio.core\n"
        "bad = {'trio', 'socket', 'ssl', 'asyncio'} & set(sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_handoff_changes_the_tools_for_new_calls_only() -> None:
    c = core(played=Played(), lookup=ToolPolicy())
    c.receive(ResponseCreated("r1"), 0)
    assert isinstance(c.receive(ToolCall("c1", "lookup", "{}", "r1"), 0)[-1], StartTool)
    c.set_tools({"book": ToolPolicy(cancel_on_interrupt=False)})
    [result] = client_events(c.receive(ToolCall("c2", "lookup", "{}", "r1"), 0))
    assert isinstance(result, ToolResult) and "unknown tool" in result.output
    assert c.receive(ToolCall("c3", "book", "{}", "r1"), 0)[-1] == StartTool(
        "c3", "book", "{}", 1, False
    )
    assert client_events(c.tool_finished("c1", "still answered")) == [
        ToolResult("c1", "still answered")
    ]
