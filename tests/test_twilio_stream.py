"""The Twilio stream's pure state: marks sent, echoed, cleared, and the played position."""

from __future__ import annotations

from kernl_trio.channels.twilio._stream import MarkLedger, ms_text


def test_frames_are_named_by_the_items_cumulative_ms() -> None:
    ledger = MarkLedger(frame_bytes=160)
    frames = list(ledger.frames(b"\xff" * 365, "item_1", now=10.0))
    assert [name for _, name in frames] == ["item_1:20", "item_1:40", "item_1:45.625"]
    assert [len(frame) for frame, _ in frames] == [160, 160, 45]
    assert ledger.last_mark == "item_1:45.625" and ledger.playback_end == 10.0 + 365 / 8000
    assert ms_text(45 * 8 + 5) == "45.625"


def test_an_echo_acknowledges_every_mark_before_it() -> None:
    ledger = MarkLedger(frame_bytes=160)
    list(ledger.frames(b"\xff" * 800, "a", now=0.0))
    echo = ledger.echo("a:60")
    assert (echo.item_id, echo.ms, echo.acknowledged, echo.cleared) == ("a", 60.0, 3, False)
    assert ledger.played_ms("a") == 60.0 and ledger.unacknowledged == 2
    assert ledger.waiting_for("a:100") and not ledger.waiting_for("a:60")
    unknown = ledger.echo("nobody:5")
    assert (unknown.item_id, unknown.acknowledged, unknown.cleared) == (None, 0, False)


def test_cleared_marks_do_not_move_the_position() -> None:
    ledger = MarkLedger(frame_bytes=160)
    list(ledger.frames(b"\xff" * 800, "a", now=0.0))
    ledger.echo("a:20")
    ledger.clear(now=1.0, unsent={"a:100"})  # a:100 never left the bridge
    assert ledger.cleared == 3 and ledger.last_mark is None and ledger.playback_end == 1.0
    assert ledger.echo("a:80").cleared
    assert not ledger.echo("a:100").cleared  # never sent, so never cleared
    assert ledger.played_ms("a") == 20.0


def test_trimming_forgets_the_oldest_marks_and_keeps_the_newest() -> None:
    ledger = MarkLedger(frame_bytes=8, max_tracked=5)
    list(ledger.frames(b"\xff" * 8 * 8, "a", now=0.0))  # a:1 .. a:8, never echoed
    assert ledger.unacknowledged == 5
    assert not ledger.waiting_for("a:3") and ledger.waiting_for("a:4")
    ledger.clear(now=0.0)
    list(ledger.frames(b"\xff" * 8 * 4, "b", now=0.0))
    ledger.clear(now=0.0)  # 9 cleared names: the 5 newest are kept
    assert ledger.cleared == 5
    assert ledger.echo("b:4").cleared and ledger.echo("a:8").cleared
    assert not ledger.echo("a:7").cleared
