"""Size limits, end to end: an incoming message over ``max_message_size`` ends the session
with ``ConnectionLost(code=1009)`` naming the limit, on both connectors; an outgoing audio
append larger than one ``input_audio_buffer.append`` may carry is split before sending."""

from __future__ import annotations

import base64

import orjson
import pytest
import trio
import trio.testing

from kernl_trio import ConnectionLost, RealtimeAgent, open_session
from kernl_trio.limits import MAX_AUDIO_APPEND_BYTES
from kernl_trio.model import ConnectOptions
from kernl_trio.protocol import AudioInputAppend
from kernl_trio.providers.openai import OpenAICodec, OpenAIRealtimeModel
from kernl_trio.providers.openai.codec import MAX_APPEND_AUDIO
from kernl_trio.transports import (
    WebSocketConnector,
    connect_trio_websocket,
    connect_websockets_sansio,
)

from .helpers import start_server

AGENT = RealtimeAgent(id="a", name="A", instructions="x")
LIMIT = 4096

connectors = pytest.mark.parametrize(
    "connector",
    [
        pytest.param(connect_websockets_sansio, id="sansio"),
        pytest.param(connect_trio_websocket, id="trio-websocket"),
    ],
)


@connectors
async def test_an_incoming_message_over_the_limit_is_connection_lost_1009(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, connector: WebSocketConnector
) -> None:
    server = await start_server(nursery, [])
    model = OpenAIRealtimeModel(base_url=server.url, connector=connector)
    options = ConnectOptions(max_message_size=LIMIT)
    with pytest.raises(ConnectionLost) as raised:
        async with open_session(AGENT, model=model, connect_options=options):
            conn = await server.connection()
            big = {"type": "rate_limits.updated", "rate_limits": [], "pad": "x" * LIMIT}
            await conn.send_frame(orjson.dumps(big).decode())
            await trio.sleep_forever()
    assert raised.value.code == 1009
    assert raised.value.reason == f"a message was over max_message_size ({LIMIT} bytes)"


def test_a_small_append_is_one_frame() -> None:
    frames = OpenAICodec().encode_wire(AudioInputAppend(bytes(960)))
    assert len(frames) == 1
    assert orjson.loads(frames[0])["type"] == "input_audio_buffer.append"


def test_an_append_over_the_model_limit_is_split_in_order() -> None:
    audio = bytes(range(256)) * ((2 * MAX_APPEND_AUDIO + 1000) // 256)
    frames = OpenAICodec().encode_wire(AudioInputAppend(audio, event_id="evt_big"))
    assert len(frames) == 3
    wires = [orjson.loads(frame) for frame in frames]
    assert all(len(w["audio"]) <= MAX_AUDIO_APPEND_BYTES for w in wires)
    parts = [base64.b64decode(w["audio"]) for w in wires]
    assert b"".join(parts) == audio
    assert all(len(part) % 2 == 0 for part in parts)  # whole PCM16 samples
    assert [w["event_id"] for w in wires] == ["evt_big-0", "evt_big-1", "evt_big-2"]


def test_encode_frames_and_encode_wire_agree() -> None:
    codec = OpenAICodec()
    event = AudioInputAppend("é".encode() * 100)
    assert [f.encode() for f in codec.encode_frames(event)] == codec.encode_wire(event)
