"""The embedded realtime server: the scripted server grown into a small model that listens.

:class:`EmbeddedServer` speaks the OpenAI GA protocol over a real WebSocket on 127.0.0.1, like
:class:`~kernl_trio.local.server.ScriptedServer` (which it extends), and adds what a client notices
of a real model:

* **server turn detection** on the incoming audio: an energy-based detector
  (:mod:`kernl_trio.local.vad`) configured from the session's ``turn_detection``
  (threshold, prefix padding, silence duration) sends ``input_audio_buffer.speech_started``
  and ``speech_stopped`` with positions in milliseconds of input audio, commits the buffer as
  a user item when speech stops, and then starts a response when ``create_response`` is on;
  with ``interrupt_response`` a response in progress is cancelled when speech starts;
* **input transcripts** (``conversation.item.input_audio_transcription.delta`` and
  ``.completed``) when the session asks for transcription;
* **replies** from a :class:`~kernl_trio.local.rules.RuleScript`: keywords to spoken answers
  and tool calls, with synthesized audio.

It does not recognise speech. What the user "said" comes from a side channel: ``transcripts``,
the texts of the utterances in the order they will be committed (or a function choosing the
text of each committed utterance). A demo or a test that plays known recordings knows what they
say; the server is told, and acts as if it had heard it. With no transcript for an utterance,
the user item has none, a ``.failed`` transcription event is sent when transcription is on, and
the rule script answers with its ``unheard`` line.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import trio
import trio_websocket

from .replies import Reply, Responder
from .rules import RuleScript, wire_format
from .server import ScriptedServer, ServerConnection, bytes_per_ms
from .vad import EnergyVAD, SpeechStart, VadSettings

Transcriber = Callable[[int, bytes], str | None]
"""``(index, audio) -> text``: the transcript of the ``index``-th utterance committed on a
connection (0-based), given its audio in the session's input format; ``None`` for none."""


class EmbeddedConnection(ServerConnection):
    """One client of an :class:`EmbeddedServer`: a :class:`ServerConnection` that listens."""

    server: EmbeddedServer

    def __init__(self, server: ScriptedServer, ws: trio_websocket.WebSocketConnection) -> None:
        super().__init__(server, ws)
        self.vad: EnergyVAD | None = None
        self.utterances = 0
        self._speech_item: str | None = None

    def hear(self, audio: bytes) -> None:
        """Run turn detection on newly appended input audio (the server calls this)."""
        detection = self.session["audio"]["input"].get("turn_detection")
        if not detection:
            return  # manual turns: the client commits
        vad = self._detector(detection)
        for event in vad.feed(audio):
            if isinstance(event, SpeechStart):
                self._speech_item = self.speech_started_nowait(event.audio_start_ms)
                continue
            item_id = self._speech_item or f"item_{self.server.next_id():04d}"
            self._speech_item = None
            self.speech_stopped_nowait(item_id, event.audio_end_ms)
            # Audio after the end of speech (the rest of this chunk) belongs to the next turn.
            tail_ms = vad.position_ms - event.audio_end_ms + vad.pending_ms
            per_ms = bytes_per_ms(self.session["audio"]["input"]["format"])
            tail_bytes = min(len(self.input_audio), round(tail_ms * per_ms))
            tail = bytes(self.input_audio[len(self.input_audio) - tail_bytes :])
            del self.input_audio[len(self.input_audio) - tail_bytes :]
            self.commit_input(item_id)
            self.input_audio += tail
            if detection.get("create_response", True) and not self.response_active:
                self.start_response({"type": "response.create"})

    def _detector(self, detection: dict[str, Any]) -> EnergyVAD:
        settings = VadSettings.from_turn_detection(detection, start_ms=self.server.speech_start_ms)
        if self.server.threshold_dbfs is not None:
            settings = VadSettings(
                self.server.threshold_dbfs,
                settings.prefix_padding_ms,
                settings.silence_duration_ms,
                settings.start_ms,
            )
        audio_format = wire_format(self.session["audio"]["input"]["format"])
        vad = self.vad
        if vad is None or vad.audio_format != audio_format:
            offset = vad.position_ms if vad is not None else 0
            vad = self.vad = EnergyVAD(settings, audio_format, offset_ms=offset)
        vad.settings = settings
        return vad

    def commit_input(self, item_id: str | None = None, transcript: str | None = None) -> str:
        """Commit the buffer as a user item, with its transcript from the side channel.

        The committed item carries no transcript (as on the real API); the transcript then
        follows as ``conversation.item.input_audio_transcription`` events when the session has
        transcription on, and goes into the server's conversation for the rule script.
        """
        audio = bytes(self.input_audio)
        index = self.utterances
        self.utterances += 1
        if transcript is None:
            transcript = self.server.transcribe(index, audio)
        item_id = super().commit_input(item_id)
        enabled = bool(self.session["audio"]["input"].get("transcription"))
        if transcript is None:
            if enabled:
                self.send_nowait(
                    {
                        "type": "conversation.item.input_audio_transcription.failed",
                        "item_id": item_id,
                        "content_index": 0,
                        "error": {
                            "type": "transcription_error",
                            "code": "audio_unintelligible",
                            "message": "The audio could not be transcribed.",
                            "param": None,
                        },
                    }
                )
            return item_id
        for index, item in enumerate(self.conversation):
            if item["id"] == item_id:
                heard = copy.deepcopy(item)
                heard["content"][0]["transcript"] = transcript
                self.conversation[index] = heard
        if enabled:
            words = transcript.split(" ")
            for position, word in enumerate(words):
                self.send_nowait(
                    {
                        "type": "conversation.item.input_audio_transcription.delta",
                        "item_id": item_id,
                        "content_index": 0,
                        "delta": word if position == 0 else " " + word,
                    }
                )
            in_format = wire_format(self.session["audio"]["input"]["format"])
            self.send_nowait(
                {
                    "type": "conversation.item.input_audio_transcription.completed",
                    "item_id": item_id,
                    "content_index": 0,
                    "transcript": transcript,
                    "usage": {
                        "type": "duration",
                        "seconds": round(in_format.duration_ms(len(audio)) / 1000, 3),
                    },
                }
            )
        return item_id


class EmbeddedServer(ScriptedServer):
    """A small real-acting realtime server (see the module docstring).

    ``server = await nursery.start(EmbeddedServer(script, transcripts=[...]).run)``, then
    point a model at ``server.url``. ``replies`` is a :class:`RuleScript` (the default one
    echoes the user's words), any responder, or a list of :class:`Reply` s used first.
    ``transcripts`` gives the text of each committed utterance, in order, per connection (or
    is a :data:`Transcriber`). ``speech_start_ms`` is how much loud audio starts speech;
    ``threshold_dbfs`` overrides the level the session's ``threshold`` maps to.
    """

    connection_class = EmbeddedConnection

    def __init__(
        self,
        replies: Responder | Sequence[Reply] | None = None,
        *,
        transcripts: Sequence[str] | Transcriber = (),
        speech_start_ms: int = 100,
        threshold_dbfs: float | None = None,
        session: dict[str, Any] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if replies is None:
            replies = RuleScript((), fallback="You said: {text}")
        super().__init__(replies, session=session, host=host, port=port)
        self.transcripts = transcripts
        self.speech_start_ms = speech_start_ms
        self.threshold_dbfs = threshold_dbfs

    def transcribe(self, index: int, audio: bytes) -> str | None:
        """The transcript of the ``index``-th utterance committed on a connection."""
        if callable(self.transcripts):
            return self.transcripts(index, audio)
        if index < len(self.transcripts):
            return self.transcripts[index]
        return None

    def on_input_audio(self, connection: ServerConnection, audio: bytes) -> None:
        if isinstance(connection, EmbeddedConnection):
            connection.hear(audio)

    async def run(
        self, *, task_status: trio.TaskStatus[EmbeddedServer] = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(super().run)
            task_status.started(self)

    async def connection(self, index: int = 0) -> EmbeddedConnection:
        found = await super().connection(index)
        assert isinstance(found, EmbeddedConnection)
        return found


__all__ = ["EmbeddedConnection", "EmbeddedServer", "Transcriber"]
