"""The demo's live transcript: session events in, readable lines (or JSON lines) out."""

from __future__ import annotations

import math
import sys
from typing import Any, TextIO

import orjson
import trio

from ..protocol import (
    PCM16_24K,
    AudioFormat,
    AudioOutputDelta,
    ItemTruncated,
    ResponseCreated,
    ResponseDone,
    ResponseInterrupted,
    ResponseStatus,
    SessionError,
    SpeechStarted,
    SpeechStopped,
    ToolCall,
    ToolCancelled,
    TranscriptInput,
    TranscriptOutput,
)
from ..session import SessionEvent, ToolOutput


def _heard_text(text: str, heard_ms: float, received_ms: float) -> str:
    """The start of ``text`` in proportion to the audio heard (the demo's voice speaks at a
    steady rate, so this is close), cut at a word."""
    if received_ms <= 0:
        return ""
    cut = text[: math.floor(len(text) * min(1.0, heard_ms / received_ms))]
    if len(cut) < len(text) and " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut


class DemoLog:
    """Consumes a session's events, prints the transcript and keeps what the summary needs.

    Times are seconds of trio time since ``start``. With ``json`` every line is one JSON
    object (``{"t": ..., "type": ..., ...}``); otherwise a readable transcript.
    """

    def __init__(
        self,
        *,
        start: float,
        json: bool = False,
        out: TextIO | None = None,
        output_format: AudioFormat = PCM16_24K,
    ) -> None:
        self.start = start
        self.json = json
        self.out = out if out is not None else sys.stdout
        self.output_format = output_format
        self.assistant_audio = bytearray()
        self.received_bytes: dict[str, int] = {}
        self.transcripts: dict[str, str] = {}
        self.user_texts: list[str] = []
        self.responses: list[str] = []
        self.open_responses: set[str] = set()
        self.calls: dict[str, tuple[str, float]] = {}
        self.completed_calls: list[str] = []
        self.cancelled_calls: list[str] = []
        self.interruptions: list[dict[str, Any]] = []
        self.truncations: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.user_speaking = False
        self.last_event_at = start
        self.done = trio.Event()

    # -- output -------------------------------------------------------------------------------
    def now(self) -> float:
        return round(trio.current_time() - self.start, 3)

    def emit(self, kind: str, message: str, /, **fields: Any) -> None:
        """One line of the transcript (or one JSON object)."""
        t = self.now()
        if self.json:
            line = orjson.dumps({"t": t, "type": kind, **fields}).decode()
        else:
            line = f"[{t:6.2f}s] {kind:<10} {message}"
        print(line, file=self.out, flush=True)

    def note(self, message: str, /, **fields: Any) -> None:
        """A line outside the timeline (header, file names)."""
        if self.json:
            line = orjson.dumps({"type": "note", "text": message, **fields}).decode()
        else:
            line = message
        print(line, file=self.out, flush=True)

    # -- events -------------------------------------------------------------------------------
    async def consume(self, events: trio.abc.ReceiveChannel[SessionEvent]) -> None:
        """Read ``events`` until the session closes them."""
        try:
            async with events:
                async for event in events:
                    self.handle(event)
        finally:
            self.done.set()

    def received_ms(self, item_id: str) -> float:
        return self.output_format.duration_ms(self.received_bytes.get(item_id, 0))

    @property
    def tools_running(self) -> int:
        return len(self.calls) - len(self.completed_calls) - len(self.cancelled_calls)

    def handle(self, event: SessionEvent) -> None:
        if isinstance(event, AudioOutputDelta):
            self.assistant_audio += event.audio
            self.received_bytes[event.item_id] = self.received_bytes.get(event.item_id, 0) + len(
                event.audio
            )
            return
        self.last_event_at = trio.current_time()
        if isinstance(event, SpeechStarted):
            self.user_speaking = True
            self.emit(
                "vad",
                f"user speech started (input audio at {event.audio_start_ms / 1000:.2f} s)",
                event="speech_started",
                audio_start_ms=event.audio_start_ms,
                item_id=event.item_id,
            )
        elif isinstance(event, SpeechStopped):
            self.user_speaking = False
            self.emit(
                "vad",
                f"user speech stopped (input audio at {event.audio_end_ms / 1000:.2f} s)",
                event="speech_stopped",
                audio_end_ms=event.audio_end_ms,
                item_id=event.item_id,
            )
        elif isinstance(event, TranscriptInput):
            self.user_texts.append(event.text)
            self.emit("user", event.text, item_id=event.item_id, text=event.text)
        elif isinstance(event, ResponseCreated):
            self.responses.append(event.response_id)
            self.open_responses.add(event.response_id)
        elif isinstance(event, ResponseDone):
            self.open_responses.discard(event.response_id)
            if event.status is not ResponseStatus.COMPLETED:
                self.emit(
                    "response",
                    f"{event.response_id} {event.status.value} ({event.reason or 'no reason'})",
                    response_id=event.response_id,
                    status=event.status.value,
                    reason=event.reason,
                )
        elif isinstance(event, TranscriptOutput):
            self.transcripts[event.item_id] = event.text
            self.emit(
                "assistant",
                event.text,
                item_id=event.item_id,
                response_id=event.response_id,
                text=event.text,
            )
        elif isinstance(event, ToolCall):
            self.calls[event.call_id] = (event.name, trio.current_time())
            self.emit(
                "tool",
                f"call {event.name}({event.arguments}) [{event.call_id}]",
                event="call",
                call_id=event.call_id,
                name=event.name,
                arguments=event.arguments,
            )
        elif isinstance(event, ToolOutput):
            name, started = self.calls.get(event.call_id, (event.name, trio.current_time()))
            took = trio.current_time() - started
            self.completed_calls.append(event.call_id)
            self.emit(
                "tool",
                f"{name} returned after {took:.2f} s: {event.output}",
                event="output",
                call_id=event.call_id,
                name=name,
                output=event.output,
                error=event.error,
                seconds=round(took, 3),
            )
        elif isinstance(event, ToolCancelled):
            self.cancelled_calls.append(event.call_id)
            self.emit(
                "tool",
                f"{event.name} cancelled [{event.call_id}]: the user interrupted the lookup",
                event="cancelled",
                call_id=event.call_id,
                name=event.name,
            )
        elif isinstance(event, ResponseInterrupted):
            self._interrupted(event)
        elif isinstance(event, ItemTruncated):
            self.truncations.append({"item_id": event.item_id, "audio_end_ms": event.audio_end_ms})
            self.emit(
                "server",
                f"truncated {event.item_id} at {event.audio_end_ms} ms",
                event="item_truncated",
                item_id=event.item_id,
                audio_end_ms=event.audio_end_ms,
            )
        elif isinstance(event, SessionError):
            self.errors.append(event.error.message)
            self.emit(
                "error",
                f"{event.error.code}: {event.error.message}",
                code=event.error.code,
                message=event.error.message,
            )

    def _interrupted(self, event: ResponseInterrupted) -> None:
        record: dict[str, Any] = {
            "response_id": event.response_id,
            "item_id": event.item_id,
            "played_ms": event.played_ms,
            "cancelled_call_ids": list(event.cancelled_call_ids),
            "source": event.source,
        }
        self.interruptions.append(record)
        cancelled = ", ".join(event.cancelled_call_ids) or "none"
        if event.item_id is not None and event.played_ms is not None:
            received = self.received_ms(event.item_id)
            record["received_ms"] = received
            heard = _heard_text(self.transcripts.get(event.item_id, ""), event.played_ms, received)
            record["heard_text"] = heard
            text = (
                f"the user talked over the assistant: heard {event.played_ms} ms of "
                f"{received:.0f} ms of {event.item_id}, truncate sent "
                f"(audio_end_ms={event.played_ms}); cancelled calls: {cancelled}"
            )
            if heard:
                text += f'\n{"":21}heard: "{heard} ..."'
        else:
            text = (
                "the user talked over the assistant: nothing to truncate; "
                f"cancelled calls: {cancelled}"
            )
        self.emit("barge-in", text, event="interrupted", **record)
