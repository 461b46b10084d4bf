"""A scripted realtime server speaking the OpenAI GA protocol over a real WebSocket.

It binds 127.0.0.1 on a free port, answers like the real API (session.created first,
session.updated with the full config, items added and done, responses streamed as
output_item / content_part / transcript / audio events, ``response.cancel`` and
``conversation.item.truncate`` handled and checked as the real server does), and records
every client event it receives with the trio time it arrived. Tests drive the rest
(speech_started, dropped sockets, malformed frames) through :class:`ServerConnection`.
"""

from __future__ import annotations

import base64
import copy
import itertools
import math
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
import orjson
import trio
import trio_websocket

from .._net import check_port, ws_url
from .replies import (
    AudioReply,
    Reply,
    Responder,
    ResponseRequest,
    TextReply,
    ToolCallReply,
    default_responder,
)

DEFAULT_SESSION: dict[str, Any] = {
    "type": "realtime",
    "object": "realtime.session",
    "model": "gpt-realtime",
    "output_modalities": ["audio"],
    "instructions": "",
    "tools": [],
    "tool_choice": "auto",
    "max_output_tokens": "inf",
    "tracing": None,
    "prompt": None,
    "expires_at": 0,
    "audio": {
        "input": {
            "format": {"type": "audio/pcm", "rate": 24000},
            "transcription": None,
            "noise_reduction": None,
            "turn_detection": {
                "type": "server_vad",
                "threshold": 0.5,
                "prefix_padding_ms": 300,
                "silence_duration_ms": 200,
                "idle_timeout_ms": None,
                "create_response": True,
                "interrupt_response": True,
            },
        },
        "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin", "speed": 1},
    },
    "include": None,
}


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "format":
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def bytes_per_ms(audio_format: dict[str, Any]) -> int:
    """48 for 24 kHz PCM16, 8 for G.711 (the only formats the GA API accepts)."""
    return 48 if audio_format.get("type", "audio/pcm") == "audio/pcm" else 1 * 8


def synthesize(ms: int, audio_format: dict[str, Any]) -> bytes:
    """A quiet 220 Hz tone of ``ms`` milliseconds in the given GA format."""
    if audio_format.get("type", "audio/pcm") != "audio/pcm":
        return b"\xff" * (8 * ms)  # G.711 mu-law silence keeps the length exact
    t = np.arange(24 * ms) / 24000
    return (np.sin(2 * np.pi * 220 * t) * 3000).astype("<i2").tobytes()


@attrs.define(eq=False)
class _Response:
    id: str
    scope: trio.CancelScope
    reason: str | None = None
    current_item: dict[str, Any] | None = None
    # ids and transcript of the audio part being streamed, to wind it down on a cancel
    current_audio: tuple[dict[str, Any], str] | None = None
    output: list[dict[str, Any]] = attrs.field(factory=list)


class ServerConnection:
    """One client connected to the scripted server."""

    def __init__(self, server: ScriptedServer, ws: trio_websocket.WebSocketConnection) -> None:
        self.server = server
        self._ws = ws
        self.session: dict[str, Any] = copy.deepcopy(server.session_defaults)
        self.session["id"] = f"sess_{server.next_id():04d}"
        self.received: list[dict[str, Any]] = []
        self.received_at: list[float] = []
        self.sent: list[dict[str, Any]] = []
        self.conversation: list[dict[str, Any]] = []
        self.audio_ms: dict[str, float] = {}
        self.input_audio = bytearray()
        self.input_audio_total = 0
        self.closed = trio.Event()
        self._response: _Response | None = None
        self._cursors: dict[str, int] = {}
        self._arrived = trio.Event()
        self._out_send, self._out_receive = trio.open_memory_channel[str](math.inf)
        self._nursery: trio.Nursery | None = None
        self._ids = itertools.count(1)

    # -- driving the client from a test -------------------------------------------------------
    async def send(self, event: dict[str, Any]) -> None:
        """Send one server event (``event_id`` is filled in when missing)."""
        self.send_nowait(event)
        await trio.lowlevel.checkpoint()

    def send_nowait(self, event: dict[str, Any]) -> None:
        if (
            "event_id" not in event
            and event.get("type") != "input_audio_buffer.dtmf_event_received"
        ):
            event = {"type": event["type"], "event_id": f"event_{next(self._ids):05d}", **event}
        self.sent.append(event)
        self._out_send.send_nowait(orjson.dumps(event).decode())

    async def send_frame(self, frame: str | bytes) -> None:
        """Send a raw frame as is (e.g. malformed JSON)."""
        if isinstance(frame, bytes):
            await self._ws.send_message(frame)
        else:
            self._out_send.send_nowait(frame)
            await trio.lowlevel.checkpoint()

    async def speech_started(self, audio_start_ms: int | None = None) -> str:
        """Act as server VAD hearing the user start to speak; returns the new user item id.

        With ``interrupt_response`` (the default) an active response is cancelled with
        reason ``turn_detected``, as the real server does.
        """
        item_id = self.speech_started_nowait(audio_start_ms)
        await trio.lowlevel.checkpoint()
        return item_id

    def speech_started_nowait(self, audio_start_ms: int | None = None) -> str:
        """:meth:`speech_started` without a checkpoint (for server-side hooks)."""
        item_id = f"item_{self.server.next_id():04d}"
        start = audio_start_ms if audio_start_ms is not None else self._input_ms()
        self.send_nowait(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": start,
                "item_id": item_id,
            }
        )
        detection = self.session["audio"]["input"].get("turn_detection") or {}
        if detection.get("interrupt_response", True) and self._response is not None:
            self._cancel_response("turn_detected")
        return item_id

    async def speech_stopped(self, item_id: str, audio_end_ms: int | None = None) -> None:
        self.speech_stopped_nowait(item_id, audio_end_ms)
        await trio.lowlevel.checkpoint()

    def speech_stopped_nowait(self, item_id: str, audio_end_ms: int | None = None) -> None:
        """:meth:`speech_stopped` without a checkpoint (for server-side hooks)."""
        end = audio_end_ms if audio_end_ms is not None else self._input_ms()
        self.send_nowait(
            {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": end, "item_id": item_id}
        )

    async def expect(self, event_type: str) -> dict[str, Any]:
        """The next client event of ``event_type`` not yet returned by ``expect``."""
        while True:
            start = self._cursors.get(event_type, 0)
            for index in range(start, len(self.received)):
                if self.received[index].get("type") == event_type:
                    self._cursors[event_type] = index + 1
                    return self.received[index]
            if self.closed.is_set():
                raise trio.EndOfChannel(f"connection closed before {event_type} arrived")
            await self._arrived.wait()

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        """Every client event of one type received so far."""
        return [event for event in self.received if event.get("type") == event_type]

    async def drop(self) -> None:
        """Cut the TCP connection without a WebSocket close handshake."""
        # trio-websocket has no public abort; closing its stream is what a dead peer looks like
        await self._ws._stream.aclose()

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        await self._ws.aclose(code, reason)

    @property
    def response_active(self) -> bool:
        return self._response is not None

    # -- serving ------------------------------------------------------------------------------
    async def serve(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._write_loop)
                self.send_nowait({"type": "session.created", "session": self.session})
                await self._read_loop()
                nursery.cancel_scope.cancel()
        finally:
            self.closed.set()
            self._wake()

    async def _write_loop(self) -> None:
        async for frame in self._out_receive:
            try:
                await self._ws.send_message(frame)
            except trio_websocket.ConnectionClosed:
                return

    async def _read_loop(self) -> None:
        while True:
            try:
                frame = await self._ws.get_message()
            except trio_websocket.ConnectionClosed:
                # get_message() on a closed connection raises without a checkpoint
                await trio.lowlevel.checkpoint()
                return
            try:
                event = orjson.loads(frame)
            except orjson.JSONDecodeError:
                self._error("invalid_json", "The frame is not valid JSON.", None)
                continue
            if not isinstance(event, dict):
                self._error("invalid_event", "Events must be JSON objects.", None)
                continue
            self.received.append(event)
            self.received_at.append(trio.current_time())
            self.server.received.append(event)
            self._wake()
            self._react(event)

    def _wake(self) -> None:
        self._arrived.set()
        self._arrived = trio.Event()

    def _error(
        self, code: str, message: str, event_id: Any, kind: str = "invalid_request_error"
    ) -> None:
        self.send_nowait(
            {
                "type": "error",
                "error": {
                    "type": kind,
                    "code": code,
                    "message": message,
                    "param": None,
                    "event_id": event_id,
                },
            }
        )

    def _input_ms(self) -> int:
        return self.input_audio_total // bytes_per_ms(self.session["audio"]["input"]["format"])

    # -- reacting to client events like the real API -------------------------------------------
    def _react(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        event_id = event.get("event_id")
        handler = getattr(self, "_on_" + str(kind).replace(".", "_"), None)
        if kind is None:
            self._error("invalid_event", "The 'type' field is missing.", event_id)
        elif handler is None:
            self._error("invalid_event", f"Invalid value: '{kind}'.", event_id)
        else:
            try:
                handler(event)
            except (KeyError, TypeError, ValueError) as exc:
                self._error("invalid_value", f"Invalid {kind}: {exc!r}", event_id)

    def _on_session_update(self, event: dict[str, Any]) -> None:
        update = dict(event["session"])
        update.pop("type", None)
        self.session = _merge(self.session, update)
        self.send_nowait({"type": "session.updated", "session": self.session})

    def _on_conversation_item_create(self, event: dict[str, Any]) -> None:
        item = {"id": f"item_{self.server.next_id():04d}", **event["item"]}
        item.setdefault("object", "realtime.item")
        item.setdefault("status", "completed")
        previous = event.get("previous_item_id")
        index = len(self.conversation)
        if previous == "root":
            index = 0
        elif previous is not None:
            ids = [existing["id"] for existing in self.conversation]
            if previous not in ids:
                self._error(
                    "invalid_value", f"Unknown previous_item_id {previous}", event.get("event_id")
                )
                return
            index = ids.index(previous) + 1
        before = self.conversation[index - 1]["id"] if index > 0 else None
        self.conversation.insert(index, item)
        self.send_nowait(
            {"type": "conversation.item.added", "previous_item_id": before, "item": item}
        )
        self.send_nowait(
            {"type": "conversation.item.done", "previous_item_id": before, "item": item}
        )

    def _on_conversation_item_delete(self, event: dict[str, Any]) -> None:
        item_id = event["item_id"]
        for index, item in enumerate(self.conversation):
            if item["id"] == item_id:
                del self.conversation[index]
                self.send_nowait({"type": "conversation.item.deleted", "item_id": item_id})
                return
        self._error("item_not_found", f"Item {item_id} does not exist.", event.get("event_id"))

    def _on_conversation_item_truncate(self, event: dict[str, Any]) -> None:
        item_id, end = event["item_id"], event["audio_end_ms"]
        audio_ms = self.audio_ms.get(item_id)
        if audio_ms is None:
            self._error("item_not_found", f"Item {item_id} has no audio.", event.get("event_id"))
        elif not isinstance(end, int) or end < 0 or end > audio_ms:
            self._error(
                "invalid_value",
                f"audio_end_ms {end} is longer than the item's audio ({audio_ms:g} ms).",
                event.get("event_id"),
            )
        else:
            self.audio_ms[item_id] = end
            self.send_nowait(
                {
                    "type": "conversation.item.truncated",
                    "item_id": item_id,
                    "content_index": event.get("content_index", 0),
                    "audio_end_ms": end,
                }
            )

    def _on_input_audio_buffer_append(self, event: dict[str, Any]) -> None:
        audio = base64.b64decode(event["audio"], validate=True)
        self.input_audio += audio
        self.input_audio_total += len(audio)
        self.server.on_input_audio(self, audio)

    def _on_input_audio_buffer_commit(self, event: dict[str, Any]) -> None:
        if not self.input_audio:
            self._error(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer is empty.",
                event.get("event_id"),
            )
            return
        self.commit_input()

    def commit_input(self, item_id: str | None = None, transcript: str | None = None) -> str:
        """Commit the input buffer as a user audio item (what server VAD does on stop)."""
        item_id = item_id or f"item_{self.server.next_id():04d}"
        previous = self.conversation[-1]["id"] if self.conversation else None
        self.input_audio.clear()
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": transcript}],
        }
        self.conversation.append(item)
        self.send_nowait(
            {
                "type": "input_audio_buffer.committed",
                "previous_item_id": previous,
                "item_id": item_id,
            }
        )
        self.send_nowait(
            {"type": "conversation.item.added", "previous_item_id": previous, "item": item}
        )
        self.send_nowait(
            {"type": "conversation.item.done", "previous_item_id": previous, "item": item}
        )
        return item_id

    def _on_input_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        self.input_audio.clear()
        self.send_nowait({"type": "input_audio_buffer.cleared"})

    def _on_response_create(self, event: dict[str, Any]) -> None:
        if self._response is not None:
            self._error(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self._response.id}.",
                event.get("event_id"),
            )
            return
        self.start_response(event)

    def _on_response_cancel(self, event: dict[str, Any]) -> None:
        if self._response is None:
            self._error(
                "response_cancel_not_active",
                "Cancellation failed: no active response found",
                event.get("event_id"),
            )
            return
        self._cancel_response("client_cancelled")

    def start_response(self, event: dict[str, Any], reply: Reply | None = None) -> str:
        """Start streaming a response (the server's own VAD calls this too)."""
        if reply is None:
            request = ResponseRequest(event, tuple(self.conversation), self.session)
            reply = self.server.next_reply(request)
        response = _Response(f"resp_{self.server.next_id():04d}", trio.CancelScope())
        self._response = response
        assert self._nursery is not None
        self._nursery.start_soon(self._stream, response, reply)
        return response.id

    def _cancel_response(self, reason: str) -> None:
        assert self._response is not None
        self._response.reason = reason
        self._response.scope.cancel()
        self._response = None

    # -- streaming a response -----------------------------------------------------------------
    def _response_object(self, response: _Response, status: str) -> dict[str, Any]:
        output = self.session["audio"]["output"]
        return {
            "object": "realtime.response",
            "id": response.id,
            "status": status,
            "status_details": None,
            "output": response.output,
            "conversation_id": "conv_0001",
            "output_modalities": self.session.get("output_modalities", ["audio"]),
            "max_output_tokens": "inf",
            "audio": {
                "output": {"format": output["format"], "voice": output.get("voice", "marin")}
            },
            "usage": None,
            "metadata": None,
        }

    async def _stream(self, response: _Response, reply: Reply) -> None:
        self.send_nowait(
            {"type": "response.created", "response": self._response_object(response, "in_progress")}
        )
        with response.scope:
            for index, part in enumerate(reply.parts):
                await self._stream_part(response, reply, index, part)
        if response.reason is None:
            self._response = None
            status, details = "completed", None
        else:
            status, details = "cancelled", {"type": "cancelled", "reason": response.reason}
            item = response.current_item
            if response.current_audio is not None:
                # as the real server does (protocols.md B.2): close the part, then the item
                ids, transcript = response.current_audio
                closed_part = {"type": "audio", "transcript": transcript}
                self.send_nowait({"type": "response.output_audio.done", **ids})
                self.send_nowait(
                    {
                        "type": "response.output_audio_transcript.done",
                        **ids,
                        "transcript": transcript,
                    }
                )
                self.send_nowait({"type": "response.content_part.done", **ids, "part": closed_part})
            if item is not None:
                item["status"] = "incomplete"
                if response.current_audio is not None:
                    item["content"] = [{"type": "output_audio", "transcript": transcript}]
                self.send_nowait(
                    {"type": "conversation.item.done", "previous_item_id": None, "item": item}
                )
                self.send_nowait(
                    {
                        "type": "response.output_item.done",
                        "response_id": response.id,
                        "output_index": len(response.output) - 1,
                        "item": item,
                    }
                )
        done = self._response_object(response, status)
        done["status_details"] = details
        done["usage"] = {"total_tokens": 0, "input_tokens": 0, "output_tokens": 0}
        self.send_nowait({"type": "response.done", "response": done})
        await trio.lowlevel.checkpoint()

    def _begin_item(self, response: _Response, item: dict[str, Any]) -> dict[str, Any]:
        previous = self.conversation[-1]["id"] if self.conversation else None
        self.conversation.append(item)
        response.output.append(item)
        response.current_item = item
        index = len(response.output) - 1
        self.send_nowait(
            {
                "type": "response.output_item.added",
                "response_id": response.id,
                "output_index": index,
                "item": dict(item),
            }
        )
        self.send_nowait(
            {"type": "conversation.item.added", "previous_item_id": previous, "item": dict(item)}
        )
        return {"response_id": response.id, "item_id": item["id"], "output_index": index}

    def _end_item(self, response: _Response, ids: dict[str, Any], item: dict[str, Any]) -> None:
        item["status"] = "completed"
        response.current_item = None
        self.send_nowait({"type": "conversation.item.done", "previous_item_id": None, "item": item})
        self.send_nowait(
            {
                "type": "response.output_item.done",
                "response_id": response.id,
                "output_index": ids["output_index"],
                "item": item,
            }
        )

    async def _stream_part(self, response: _Response, reply: Reply, index: int, part: Any) -> None:  # noqa: ASYNC910 - an empty audio part checkpoints before the loop
        item_id = f"item_{self.server.next_id():04d}"
        if isinstance(part, ToolCallReply):
            call_id = part.call_id or f"call_{self.server.next_id():04d}"
            item: dict[str, Any] = {
                "id": item_id,
                "object": "realtime.item",
                "type": "function_call",
                "status": "in_progress",
                "name": part.name,
                "call_id": call_id,
                "arguments": "",
            }
            ids = self._begin_item(response, item)
            self.send_nowait(
                {
                    "type": "response.function_call_arguments.delta",
                    **ids,
                    "call_id": call_id,
                    "delta": part.arguments,
                }
            )
            self.send_nowait(
                {
                    "type": "response.function_call_arguments.done",
                    **ids,
                    "call_id": call_id,
                    "name": part.name,
                    "arguments": part.arguments,
                }
            )
            item["arguments"] = part.arguments
            self._end_item(response, ids, item)
            await trio.lowlevel.checkpoint()
            return
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        ids = self._begin_item(response, item)
        ids["content_index"] = 0
        if isinstance(part, TextReply):
            self.send_nowait(
                {"type": "response.content_part.added", **ids, "part": {"type": "text", "text": ""}}
            )
            self.send_nowait({"type": "response.output_text.delta", **ids, "delta": part.text})
            self.send_nowait({"type": "response.output_text.done", **ids, "text": part.text})
            item["content"] = [{"type": "output_text", "text": part.text}]
            self.send_nowait(
                {
                    "type": "response.content_part.done",
                    **ids,
                    "part": {"type": "text", "text": part.text},
                }
            )
            self._end_item(response, ids, item)
            await trio.lowlevel.checkpoint()
            return
        assert isinstance(part, AudioReply)
        out_format = self.session["audio"]["output"]["format"]
        per_ms = bytes_per_ms(out_format)
        audio = part.audio if part.audio is not None else synthesize(part.ms, out_format)
        self.send_nowait(
            {
                "type": "response.content_part.added",
                **ids,
                "part": {"type": "audio", "transcript": ""},
            }
        )
        self.send_nowait(
            {"type": "response.output_audio_transcript.delta", **ids, "delta": part.transcript}
        )
        self.audio_ms[item_id] = 0
        response.current_audio = (ids, part.transcript)
        step = per_ms * reply.chunk_ms
        if not audio:  # no chunk below to checkpoint after
            await trio.lowlevel.checkpoint()
        for offset in range(0, len(audio), step):
            chunk = audio[offset : offset + step]
            self.send_nowait(
                {
                    "type": "response.output_audio.delta",
                    **ids,
                    "delta": base64.b64encode(chunk).decode(),
                }
            )
            self.audio_ms[item_id] += len(chunk) / per_ms
            if reply.realtime:
                await trio.sleep(len(chunk) / per_ms / 1000)
            else:
                await trio.lowlevel.checkpoint()
        response.current_audio = None
        self.send_nowait({"type": "response.output_audio.done", **ids})
        self.send_nowait(
            {"type": "response.output_audio_transcript.done", **ids, "transcript": part.transcript}
        )
        self.send_nowait(
            {
                "type": "response.content_part.done",
                **ids,
                "part": {"type": "audio", "transcript": part.transcript},
            }
        )
        item["content"] = [{"type": "output_audio", "transcript": part.transcript}]
        self._end_item(response, ids, item)


class ScriptedServer:
    """The server: ``server = await nursery.start(ScriptedServer(...).run)``; ``server.url``.

    ``replies`` is either a responder callable or a sequence of replies used in order (then
    :func:`default_responder` once they run out).
    """

    #: The class of each client's connection; subclasses may serve a subclass of it.
    connection_class: type[ServerConnection] = ServerConnection

    def __init__(
        self,
        replies: Responder | Sequence[Reply] = default_responder,
        *,
        session: dict[str, Any] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if callable(replies):
            self._responder: Responder = replies
            self._queue: list[Reply] = []
        else:
            self._responder = default_responder
            self._queue = list(replies)
        self.session_defaults = _merge(DEFAULT_SESSION, session or {})
        self.host = host
        self.port = check_port(port)
        self.received: list[dict[str, Any]] = []
        self.connections: list[ServerConnection] = []
        self.request_headers: list[list[tuple[bytes, bytes]]] = []
        self._ids = itertools.count(1)
        self._connected = trio.Event()

    @property
    def url(self) -> str:
        return ws_url(self.host, self.port, "/v1/realtime")

    def next_id(self) -> int:
        return next(self._ids)

    def next_reply(self, request: ResponseRequest) -> Reply:
        if self._queue:
            return self._queue.pop(0)
        return self._responder(request)

    def on_input_audio(self, connection: ServerConnection, audio: bytes) -> None:
        """Hook for subclasses (e.g. server-side voice activity detection)."""

    async def connection(self, index: int = 0) -> ServerConnection:
        """The ``index``-th connection, once a client has made it."""
        await trio.lowlevel.checkpoint()  # also for one made already
        while len(self.connections) <= index:
            await self._connected.wait()
        return self.connections[index]

    async def run(
        self, *, task_status: trio.TaskStatus[ScriptedServer] = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                trio_websocket.serve_websocket, self._handle, self.host, self.port, None
            )
            self.port = server.port
            task_status.started(self)

    async def _handle(self, request: trio_websocket.WebSocketRequest) -> None:
        self.request_headers.append(list(request.headers))
        ws = await request.accept()
        connection = self.connection_class(self, ws)
        self.connections.append(connection)
        self._connected.set()
        self._connected = trio.Event()
        await connection.serve()


__all__ = [
    "DEFAULT_SESSION",
    "ScriptedServer",
    "ServerConnection",
    "bytes_per_ms",
    "synthesize",
]
