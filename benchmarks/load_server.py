"""A load server speaking the OpenAI Realtime GA protocol on 127.0.0.1, for the session benchmarks.

It runs in its own process (``python -m benchmarks.load_server --workload w1``), prints one JSON
line ``{"port": N}`` once it listens, serves until its standard input closes (or
``--max-seconds`` pass), then prints one JSON report line (every client event it received, with
its arrival time, and the server's own milestones) and exits.

It is written to stay out of the way of the clients it measures:

* plain asyncio and hand-written RFC 6455 framing (no permessage-deflate is negotiated, so no
  client compresses), so a frame costs a few microseconds;
* audio deltas are pre-encoded frames: per send only the send time, a sequence number and the
  first 12 base64 characters of the audio are patched in place;
* W3's thousands of paced deltas per second come from one ticker, not a task per session.

Every event carries ``"t_send_ns"``: ``time.monotonic_ns()`` when it was written, a clock every
process on the machine shares. Audio deltas also carry it in their first 8 audio bytes
(little-endian), followed by one byte with the turn number, so a client that only exposes the
decoded audio (as a session's public API does) can still compute per-delta lag.

Workloads (see benchmarks/README.md): ``w1`` burst, ``w2`` barge-in (``--mode server|client``),
``w3`` paced streams, ``w4`` tool call vs barge-in, ``idle`` (memory).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import copy
import hashlib
import json
import os
import resource
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

from kernl_trio.testing.server import DEFAULT_SESSION

try:
    import orjson

    def _loads(data: bytes) -> Any:
        return orjson.loads(data)

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

except ImportError:  # pragma: no cover - the peer's environment may lack orjson

    def _loads(data: bytes) -> Any:
        return json.loads(data)

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()


_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
DELTA_BYTES = 960  # 20 ms of 24 kHz PCM16
DELTA_MS = 20
_APPEND_MARK = b"input_audio_buffer.append"
_TS_WIDTH = 20  # characters reserved for t_send_ns (a JSON number padded with spaces)

now_ns = time.monotonic_ns


def _session_object(interrupt_response: bool) -> dict[str, Any]:
    # the same default session as the test harness's scripted server
    session = copy.deepcopy(DEFAULT_SESSION)
    session["id"] = "sess_bench"
    session["audio"]["input"]["turn_detection"]["interrupt_response"] = interrupt_response
    return session


def _frame_header(length: int, opcode: int = 0x1) -> bytes:
    first = 0x80 | opcode
    if length < 126:
        return bytes((first, length))
    if length < 65536:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


def _unmask(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return payload
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def _pcm_body() -> bytes:
    """960 bytes of a quiet square-ish wave; the first 9 bytes are overwritten per delta."""
    samples = [(1500 if (i // 27) % 2 else -1500) for i in range(DELTA_BYTES // 2)]
    return struct.pack(f"<{len(samples)}h", *samples)


_PCM = _pcm_body()
_PCM_TAIL_B64 = base64.b64encode(_PCM[9:]).decode()


class DeltaTemplate:
    """One pre-encoded ``response.output_audio.delta`` frame; ``frame()`` patches 3 fields."""

    def __init__(self, response_id: str, item_id: str) -> None:
        head = (
            '{"type":"response.output_audio.delta","event_id":"event_'
            + "0" * 12
            + f'","response_id":"{response_id}","item_id":"{item_id}",'
            + '"output_index":0,"content_index":0,"delta":"'
        )
        audio = "A" * 12 + _PCM_TAIL_B64
        tail = '","t_send_ns":' + " " * _TS_WIDTH + "}"
        payload = (head + audio + tail).encode()
        header = _frame_header(len(payload))
        self._buf = bytearray(header + payload)
        base = len(header)
        self._seq_at = base + len('{"type":"response.output_audio.delta","event_id":"event_')
        self._audio_at = base + len(head)
        self._ts_at = base + len(payload) - 1 - _TS_WIDTH

    def frame(self, seq: int, turn: int) -> tuple[bytes, int]:
        """The frame to write and the send time it carries."""
        buf = self._buf
        t = now_ns()
        buf[self._seq_at : self._seq_at + 12] = b"%012d" % (seq % 10**12)
        buf[self._audio_at : self._audio_at + 12] = base64.b64encode(
            t.to_bytes(8, "little") + bytes((turn & 0xFF,))
        )
        buf[self._ts_at : self._ts_at + _TS_WIDTH] = b"%20d" % t
        return bytes(buf), t


class Connection(asyncio.Protocol):
    def __init__(self, server: LoadServer) -> None:
        self.server = server
        self.index = server.next_index()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.handshaken = False
        self.closed = False
        self.path = ""
        self.seq = 0
        self.turn = -1
        self.can_write = asyncio.Event()
        self.can_write.set()
        self.events: list[list[Any]] = []  # [t_ns, type, turn, detail]
        self.marks: list[list[Any]] = []  # server milestones: [t_ns, name, turn, detail]
        self.appends = 0
        self.append_first = 0
        self.append_last = 0
        self.deltas_sent = 0
        self.waiters: dict[str, asyncio.Event] = {}
        self.fragments: bytearray | None = None
        self.task: asyncio.Task[None] | None = None
        self.t_open = now_ns()
        self.t_close = 0

    # -- asyncio protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=256 * 1024)
        self.server.connections.append(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.t_close = now_ns()
        self.can_write.set()
        for waiter in self.waiters.values():
            waiter.set()
        if self.task is not None:
            self.task.cancel()

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.handshaken:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            request = bytes(self.buffer[:end]).decode("latin-1")
            del self.buffer[: end + 4]
            self._handshake(request)
            if not self.handshaken:
                return
        self._frames()

    # -- WebSocket ---------------------------------------------------------------------------
    def _handshake(self, request: str) -> None:
        assert self.transport is not None
        lines = request.split("\r\n")
        parts = lines[0].split(" ")
        self.path = parts[1] if len(parts) > 1 else ""
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        key = headers.get("sec-websocket-key")
        if key is None:
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            self.transport.close()
            return
        accept = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
        self.transport.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        self.handshaken = True
        self.send_event("session.created", {"session": self.server.session})
        self.task = asyncio.get_running_loop().create_task(self.server.workload(self))

    def _frames(self) -> None:
        buf = self.buffer
        while len(buf) >= 2:
            b0, b1 = buf[0], buf[1]
            length = b1 & 0x7F
            at = 2
            if length == 126:
                if len(buf) < 4:
                    return
                length = int.from_bytes(buf[2:4], "big")
                at = 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length = int.from_bytes(buf[2:10], "big")
                at = 10
            masked = b1 & 0x80
            if masked:
                at += 4
            if len(buf) < at + length:
                return
            mask = bytes(buf[at - 4 : at]) if masked else b"\0\0\0\0"
            raw = bytes(buf[at : at + length])
            del buf[: at + length]
            self._frame(b0 & 0x80, b0 & 0x0F, raw, mask)
            if self.closed:
                return

    def _frame(self, fin: int, opcode: int, raw: bytes, mask: bytes) -> None:
        assert self.transport is not None
        if opcode == 0x8:
            payload = _unmask(raw, mask)
            self.transport.write(_frame_header(len(payload[:2]), 0x8) + payload[:2])
            self.transport.close()
            self.closed = True
            return
        if opcode == 0x9:
            payload = _unmask(raw, mask)
            self.transport.write(_frame_header(len(payload), 0xA) + payload)
            return
        if opcode == 0xA:
            return
        if opcode == 0x0 or not fin:  # fragmented message (no client here sends one)
            if self.fragments is None:
                self.fragments = bytearray()
            self.fragments += _unmask(raw, mask)
            if not fin:
                return
            payload = bytes(self.fragments)
            self.fragments = None
            self._message(payload)
            return
        # Appends are most of what W3's clients send: recognise them from their first bytes.
        if len(raw) > 256 and _APPEND_MARK in _unmask(raw[:64], mask):
            t = now_ns()
            self.appends += 1
            self.append_last = t
            if not self.append_first:
                self.append_first = t
            return
        self._message(_unmask(raw, mask))

    def _message(self, payload: bytes) -> None:
        t = now_ns()
        try:
            event = _loads(payload)
            kind = event.get("type")
        except Exception:
            self.events.append([t, "<invalid>", self.turn, None])
            return
        if kind == "input_audio_buffer.append":
            self.appends += 1
            self.append_last = t
            self.append_first = self.append_first or t
            return
        detail: dict[str, Any] = {}
        if kind == "conversation.item.truncate":
            detail = {k: event.get(k) for k in ("item_id", "content_index", "audio_end_ms")}
            self.send_event(
                "conversation.item.truncated",
                {
                    "item_id": event.get("item_id"),
                    "content_index": event.get("content_index", 0),
                    "audio_end_ms": event.get("audio_end_ms"),
                },
            )
        elif kind == "response.cancel":
            detail = {"response_id": event.get("response_id")}
        elif kind == "conversation.item.create":
            item = event.get("item") or {}
            detail = {k: item.get(k) for k in ("type", "call_id", "output")}
        elif kind == "session.update":
            self.send_event("session.updated", {"session": self.server.session})
        self.events.append([t, kind, self.turn, detail or None])
        waiter = self.waiters.get(kind)
        if waiter is not None:
            waiter.set()

    # -- sending -------------------------------------------------------------------------------
    def write(self, frame: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(frame)

    def send_event(self, kind: str, fields: dict[str, Any]) -> int:
        self.seq += 1
        t = now_ns()
        event = {"type": kind, "event_id": f"event_{self.seq:012d}", **fields, "t_send_ns": t}
        payload = _dumps(event)
        self.write(_frame_header(len(payload)) + payload)
        return t

    def send_delta(self, template: DeltaTemplate) -> int:
        self.seq += 1
        self.deltas_sent += 1
        frame, t = template.frame(self.seq, self.turn)
        self.write(frame)
        return t

    def mark(self, name: str, t: int | None = None, detail: Any = None) -> int:
        t = now_ns() if t is None else t
        self.marks.append([t, name, self.turn, detail])
        return t

    async def wait_for(self, kind: str, limit: float | None = None) -> bool:
        """Until the client sends an event of ``kind`` (or the timeout); True if it did."""
        for event in reversed(self.events):
            if event[1] == kind and event[2] == self.turn:
                return True
        waiter = self.waiters[kind] = asyncio.Event()
        try:
            await asyncio.wait_for(waiter.wait(), limit)
        except TimeoutError:
            return False
        finally:
            self.waiters.pop(kind, None)
        return not self.closed

    def report(self) -> dict[str, Any]:
        return {
            "conn": self.index,
            "path": self.path,
            "t_open": self.t_open,
            "t_close": self.t_close,
            "events": self.events,
            "marks": self.marks,
            "appends": self.appends,
            "append_first": self.append_first,
            "append_last": self.append_last,
            "deltas_sent": self.deltas_sent,
        }


# -- response building blocks ------------------------------------------------------------------


def _response(response_id: str, status: str, output: list[Any], reason: str | None) -> Any:
    return {
        "object": "realtime.response",
        "id": response_id,
        "status": status,
        "status_details": None if reason is None else {"type": status, "reason": reason},
        "output": output,
        "conversation_id": "conv_bench",
        "output_modalities": ["audio"],
        "max_output_tokens": "inf",
        "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"}},
        "usage": None
        if status == "in_progress"
        else {"total_tokens": 0, "input_tokens": 0, "output_tokens": 0},
        "metadata": None,
    }


def _message_item(item_id: str, status: str) -> dict[str, Any]:
    content = [] if status == "in_progress" else [{"type": "output_audio", "transcript": ""}]
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def begin_audio_response(conn: Connection, response_id: str, item_id: str) -> DeltaTemplate:
    conn.send_event(
        "response.created", {"response": _response(response_id, "in_progress", [], None)}
    )
    item = _message_item(item_id, "in_progress")
    conn.send_event(
        "response.output_item.added", {"response_id": response_id, "output_index": 0, "item": item}
    )
    conn.send_event("conversation.item.added", {"previous_item_id": None, "item": item})
    conn.send_event(
        "response.content_part.added",
        {
            "response_id": response_id,
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "part": {"type": "audio", "transcript": ""},
        },
    )
    return DeltaTemplate(response_id, item_id)


def end_audio_response(
    conn: Connection,
    response_id: str,
    item_id: str,
    status: str = "completed",
    reason: str | None = None,
) -> int:
    ids = {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}
    conn.send_event("response.output_audio.done", ids)
    conn.send_event(
        "response.content_part.done", {**ids, "part": {"type": "audio", "transcript": ""}}
    )
    item = _message_item(item_id, "completed" if status == "completed" else "incomplete")
    conn.send_event(
        "response.output_item.done", {"response_id": response_id, "output_index": 0, "item": item}
    )
    conn.send_event("conversation.item.done", {"previous_item_id": None, "item": item})
    return conn.send_event(
        "response.done", {"response": _response(response_id, status, [item], reason)}
    )


# -- workloads -------------------------------------------------------------------------------------


class LoadServer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.session = _session_object(interrupt_response=args.mode != "client")
        self.connections: list[Connection] = []
        self._index = 0
        self.w3_slots: list[list[tuple[Connection, list[Any]]]] = [[] for _ in range(DELTA_MS)]
        self.w3_slips: list[int] = []
        self.workload: Callable[[Connection], Any] = getattr(self, f"_{args.workload}")

    def next_index(self) -> int:
        self._index += 1
        return self._index - 1

    async def _idle(self, conn: Connection) -> None:
        await asyncio.Event().wait()

    async def _w1(self, conn: Connection) -> None:
        """On response.create: ``--deltas`` audio deltas as fast as the client takes them."""
        await conn.wait_for("response.create")
        conn.turn = 0
        template = begin_audio_response(conn, "resp_w1", "item_w1")
        first = 0
        t = 0
        for _ in range(self.args.deltas):
            if not conn.can_write.is_set():
                await conn.can_write.wait()
            if conn.closed:
                return
            t = conn.send_delta(template)
            first = first or t
        conn.mark("first_delta", first)
        conn.mark("last_delta", t)
        end_audio_response(conn, "resp_w1", "item_w1")
        await asyncio.Event().wait()

    async def _paced_deltas(
        self,
        conn: Connection,
        template: DeltaTemplate,
        until: Callable[[], bool],
        limit_ns: int,
        first_mark: str | None = "first_delta",
    ) -> int:
        """Real-time audio: one delta every 20 ms until ``until()`` or ``limit_ns``."""
        start = now_ns()
        k = 0
        while not conn.closed and not until():
            due = start + k * DELTA_MS * 1_000_000
            if due - start >= limit_ns:
                break
            wait = (due - now_ns()) / 1e9
            if wait > 0:
                await asyncio.sleep(wait)
                if until():
                    break
            t = conn.send_delta(template)
            if k == 0 and first_mark:
                conn.mark(first_mark, t)
            k += 1
        return k

    async def _w2(self, conn: Connection) -> None:
        """Barge-in turns: 1 s of real-time audio, then speech_started (see the README)."""
        args = self.args
        await conn.wait_for("response.create")
        for turn in range(args.turns):
            conn.turn = turn
            rid, iid = f"resp_{turn:04d}", f"item_{turn:04d}"
            template = begin_audio_response(conn, rid, iid)
            sent = await self._paced_deltas(
                conn, template, lambda: False, int(args.speak_ms * 1_000_000)
            )
            # speech_started goes out speak_ms after the first delta, not after the last one.
            first = next(m[0] for m in reversed(conn.marks) if m[1] == "first_delta")
            wait = (first + args.speak_ms * 1_000_000 - now_ns()) / 1e9
            if wait > 0:
                await asyncio.sleep(wait)
            t_ss = conn.send_event(
                "input_audio_buffer.speech_started",
                {"audio_start_ms": 1000 * (turn + 1), "item_id": f"item_user_{turn:04d}"},
            )
            conn.mark(
                "speech_started", t_ss, {"deltas_before": sent, "response_id": rid, "item_id": iid}
            )
            if args.mode == "server":
                # The server cancels the response itself; a few deltas were already in flight.
                for _ in range(args.late_deltas):
                    conn.send_delta(template)
                end_audio_response(conn, rid, iid, "cancelled", "turn_detected")
                late = args.late_deltas
            else:
                cancelled = [False]

                def cancel_arrived(cancelled: list[bool] = cancelled) -> bool:
                    if not cancelled[0]:
                        cancelled[0] = any(
                            e[1] == "response.cancel" and e[2] == conn.turn for e in conn.events
                        )
                    return cancelled[0]

                late = await self._paced_deltas(
                    conn, template, cancel_arrived, 2_000_000_000, first_mark=None
                )
                end_audio_response(conn, rid, iid, "cancelled", "client_cancelled")
            conn.mark("response_done", None, {"late_deltas": late})
            await conn.wait_for("conversation.item.truncate", limit=1.0)
            await asyncio.sleep(args.gap_ms / 1000)
            conn.send_event(
                "input_audio_buffer.speech_stopped",
                {"audio_end_ms": 1000 * (turn + 1) + 500, "item_id": f"item_user_{turn:04d}"},
            )
            if conn.closed:
                return
        conn.turn = args.turns
        conn.mark("turns_done")
        await asyncio.Event().wait()

    async def _w3(self, conn: Connection) -> None:
        """On response.create: 50 deltas/s for ``--duration`` s, paced by the ticker."""
        await conn.wait_for("response.create")
        conn.turn = 0
        template = begin_audio_response(conn, "resp_w3", "item_w3")
        # Due times fall on whole milliseconds, so the ticker's visit of a slot finds them due.
        phase_ms = conn.index % DELTA_MS
        start = (now_ns() // 1_000_000 + 1 + phase_ms) * 1_000_000
        total = int(self.args.duration * 1000) // DELTA_MS
        period = DELTA_MS * 1_000_000
        done = asyncio.Event()
        state: list[Any] = [template, start, 0, total, period, done]
        self.w3_slots[(start // 1_000_000) % DELTA_MS].append((conn, state))
        conn.mark("stream_start", start)
        await done.wait()
        end_audio_response(conn, "resp_w3", "item_w3")
        conn.mark("stream_end")
        await asyncio.Event().wait()

    async def ticker(self) -> None:
        """W3's pacer: each ms, the connections whose phase falls in that ms send what is due."""
        last_ms = now_ns() // 1_000_000
        slips = self.w3_slips
        while True:
            await asyncio.sleep(0.001)
            now_ms = now_ns() // 1_000_000
            for ms in range(last_ms + 1, now_ms + 1):
                slot = self.w3_slots[ms % DELTA_MS]
                if not slot:
                    continue
                keep = []
                for conn, state in slot:
                    template, start, k, total, period, done = state
                    t = now_ns()
                    while k < total and start + k * period <= t and not conn.closed:
                        sent = conn.send_delta(template)
                        slips.append(sent - (start + k * period))
                        k += 1
                    state[2] = k
                    if k >= total or conn.closed:
                        done.set()
                    else:
                        keep.append((conn, state))
                slot[:] = keep
            last_ms = max(last_ms, now_ms)

    async def _w4(self, conn: Connection) -> None:
        """A tool call, then 200 ms later speech_started and a new audio response."""
        args = self.args
        await conn.wait_for("response.create")
        conn.turn = 0
        rid, call_item, call_id = "resp_call", "item_call", "call_w4_0001"
        conn.send_event("response.created", {"response": _response(rid, "in_progress", [], None)})
        item = {
            "id": call_item,
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "name": args.tool_name,
            "call_id": call_id,
            "arguments": "",
        }
        conn.send_event(
            "response.output_item.added", {"response_id": rid, "output_index": 0, "item": item}
        )
        conn.send_event("conversation.item.added", {"previous_item_id": None, "item": item})
        ids = {"response_id": rid, "item_id": call_item, "output_index": 0, "call_id": call_id}
        conn.send_event("response.function_call_arguments.delta", {**ids, "delta": "{}"})
        t_call = conn.send_event(
            "response.function_call_arguments.done",
            {**ids, "name": args.tool_name, "arguments": "{}"},
        )
        done_item = {**item, "status": "completed", "arguments": "{}"}
        conn.send_event(
            "response.output_item.done", {"response_id": rid, "output_index": 0, "item": done_item}
        )
        conn.send_event("conversation.item.done", {"previous_item_id": None, "item": done_item})
        conn.send_event(
            "response.done", {"response": _response(rid, "completed", [done_item], None)}
        )
        conn.mark("tool_call", t_call, {"call_id": call_id})
        await asyncio.sleep(args.barge_after_ms / 1000)
        conn.turn = 1
        t_ss = conn.send_event(
            "input_audio_buffer.speech_started", {"audio_start_ms": 1000, "item_id": "item_user_w4"}
        )
        conn.mark("speech_started", t_ss)
        conn.send_event(
            "input_audio_buffer.speech_stopped", {"audio_end_ms": 1500, "item_id": "item_user_w4"}
        )
        template = begin_audio_response(conn, "resp_after", "item_after")
        for _ in range(10):
            conn.send_delta(template)
        end_audio_response(conn, "resp_after", "item_after")
        conn.mark("new_response_done")
        await asyncio.Event().wait()


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    server = LoadServer(args)
    listener = await loop.create_server(
        lambda: Connection(server), "127.0.0.1", args.port, backlog=1024
    )
    port = listener.sockets[0].getsockname()[1]
    sys.stdout.write(json.dumps({"port": port, "pid": os.getpid()}) + "\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop.add_reader(
        sys.stdin.fileno(), lambda: stop.set() if not os.read(sys.stdin.fileno(), 4096) else None
    )
    ticker = loop.create_task(server.ticker()) if args.workload == "w3" else None
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = now_ns()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), args.max_seconds)
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    wall = (now_ns() - t0) / 1e9
    if ticker is not None:
        ticker.cancel()
    listener.close()
    for conn in server.connections:
        if conn.task is not None:
            conn.task.cancel()
        if conn.transport is not None:
            conn.transport.abort()
    slips = sorted(server.w3_slips)
    cpu = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    report = {
        "server": {
            "workload": args.workload,
            "cpu_s": round(cpu, 3),
            "wall_s": round(wall, 3),
            "slip_p50_ms": slips[len(slips) // 2] / 1e6 if slips else None,
            "slip_p99_ms": slips[int(len(slips) * 0.99)] / 1e6 if slips else None,
            "slip_max_ms": slips[-1] / 1e6 if slips else None,
        },
        "connections": [c.report() for c in server.connections],
    }
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", choices=["w1", "w2", "w3", "w4", "idle"], required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--deltas", type=int, default=20_000, help="W1: deltas per response")
    parser.add_argument(
        "--mode",
        choices=["server", "client"],
        default="server",
        help="W2: who cancels the response on speech_started",
    )
    parser.add_argument("--turns", type=int, default=30, help="W2: barge-in turns")
    parser.add_argument("--speak-ms", type=float, default=1000, help="W2: audio before barge-in")
    parser.add_argument(
        "--late-deltas",
        type=int,
        default=2,
        help="W2 server mode: deltas already in flight after speech_started",
    )
    parser.add_argument("--gap-ms", type=float, default=200, help="W2: pause between turns")
    parser.add_argument("--duration", type=float, default=10, help="W3: seconds of streaming")
    parser.add_argument("--tool-name", default="slow_tool", help="W4: the tool the server calls")
    parser.add_argument("--barge-after-ms", type=float, default=200, help="W4: call -> barge-in")
    args = parser.parse_args(argv)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
