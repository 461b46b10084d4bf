"""Cost of the OpenAI GA codec per event, decode and encode.

Run from the repository root:

    .venv/bin/python benchmarks/codec.py

Each figure is the best of ``--repeat`` runs of ``--number`` calls (``timeit``), in ns per
event: a lower bound of the steady cost on an idle machine. Decoding is measured from the JSON
text frame (``OpenAICodec.decode``, which includes ``orjson.loads``); encoding both to wire dicts
(``encode``), to JSON text (``encode_frames``, ``str``) and to JSON bytes (``encode_wire``,
what a connector sends as a text frame without decoding it to ``str`` and encoding it back).
The last column is ``encode_frames`` plus the UTF-8 encode a connector then does, the path
``encode_wire`` replaces.

The issue's target compares decoding a ``response.output_audio.delta`` frame carrying 960 bytes
of PCM16 (20 ms at 24 kHz) with ``orjson.loads`` of the same frame alone. The script also prints
the floor no decoder can go under: ``orjson.loads`` plus ``pybase64.b64decode`` of the delta
(the one base64 decode), so the codec's own share is visible. The frames are fixed (zero PCM,
realistic ids), so two runs on one machine give comparable figures.
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import timeit
from collections.abc import Callable

import orjson
import pybase64

from kernl_trio.protocol import AudioInputAppend, ItemTruncate, ToolResult
from kernl_trio.providers.openai.codec import OpenAICodec

AUDIO_960 = bytes(960)  # 20 ms of PCM16 at 24 kHz

AUDIO_DELTA = orjson.dumps(
    {
        "type": "response.output_audio.delta",
        "event_id": "event_C9G5RJeJ2gF77mV7f2B1j",
        "response_id": "resp_C9G5RJeJ2gF77mV7f2B1j",
        "item_id": "item_C9G5RJeJ2gF77mV7f2B1j",
        "output_index": 0,
        "content_index": 0,
        "delta": base64.b64encode(AUDIO_960).decode(),
    }
).decode()

TRANSCRIPT_DELTA = orjson.dumps(
    {
        "type": "response.output_audio_transcript.delta",
        "event_id": "event_C9G5RJeJ2gF77mV7f2B1k",
        "response_id": "resp_C9G5RJeJ2gF77mV7f2B1j",
        "item_id": "item_C9G5RJeJ2gF77mV7f2B1j",
        "output_index": 0,
        "content_index": 0,
        "delta": " is four.",
    }
).decode()

RESPONSE_DONE = orjson.dumps(
    {
        "type": "response.done",
        "event_id": "event_t1_018",
        "response": {
            "object": "realtime.response",
            "id": "resp_t1_0001",
            "status": "completed",
            "status_details": None,
            "output": [
                {
                    "id": "item_t1_asst01",
                    "object": "realtime.item",
                    "type": "message",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_audio", "transcript": "Two plus two is four."}],
                }
            ],
            "conversation_id": "conv_t1_0001",
            "output_modalities": ["audio"],
            "max_output_tokens": "inf",
            "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"}},
            "usage": {
                "total_tokens": 177,
                "input_tokens": 140,
                "output_tokens": 37,
                "input_token_details": {
                    "text_tokens": 127,
                    "audio_tokens": 13,
                    "image_tokens": 0,
                    "cached_tokens": 64,
                    "cached_tokens_details": {
                        "text_tokens": 64,
                        "audio_tokens": 0,
                        "image_tokens": 0,
                    },
                },
                "output_token_details": {"text_tokens": 10, "audio_tokens": 27},
            },
            "metadata": None,
        },
    }
).decode()

_WEATHER_PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "City name, e.g. Paris"}},
    "required": ["city"],
    "additionalProperties": False,
}
SESSION_UPDATED = orjson.dumps(
    {
        "type": "session.updated",
        "event_id": "event_t5_002",
        "session": {
            "type": "realtime",
            "object": "realtime.session",
            "id": "sess_t5_0001",
            "model": "gpt-realtime-2025-08-28",
            "output_modalities": ["audio"],
            "instructions": "You are a phone receptionist for Acme Bakery. Keep answers short.",
            "tools": [
                {
                    "type": "function",
                    "name": "get_weather",
                    "description": "Get current weather for a city.",
                    "parameters": _WEATHER_PARAMS,
                }
            ],
            "tool_choice": "auto",
            "max_output_tokens": 1024,
            "tracing": None,
            "prompt": None,
            "expires_at": 1756324832,
            "audio": {
                "input": {
                    "format": {"type": "audio/pcmu"},
                    "transcription": {"model": "gpt-4o-mini-transcribe", "language": "en"},
                    "noise_reduction": {"type": "near_field"},
                    "turn_detection": {
                        "type": "server_vad",
                        "threshold": 0.6,
                        "prefix_padding_ms": 300,
                        "silence_duration_ms": 500,
                        "idle_timeout_ms": 8000,
                        "create_response": True,
                        "interrupt_response": True,
                    },
                },
                "output": {"format": {"type": "audio/pcmu"}, "voice": "marin", "speed": 1},
            },
            "include": None,
        },
    }
).decode()

TOOL_CALL_DONE = orjson.dumps(
    {
        "type": "response.function_call_arguments.done",
        "event_id": "event_t3_008",
        "response_id": "resp_t3_0001",
        "item_id": "item_t3_fc01",
        "output_index": 0,
        "call_id": "call_t3_Xy12",
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
    }
).decode()


def best_ns(steps: dict[str, Callable[[], object]], number: int, repeat: int) -> dict[str, float]:
    """Best ns per call of each step; runs are interleaved so that load hits all alike."""
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(repeat):
        for name, step in steps.items():
            best[name] = min(best[name], timeit.timeit(step, number=number))
    return {name: t / number * 1e9 for name, t in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=10_000, help="calls per run")
    parser.add_argument("--repeat", type=int, default=25, help="runs; the best is kept")
    args = parser.parse_args()
    codec = OpenAICodec()

    def ns(**steps: Callable[[], object]) -> dict[str, float]:
        return best_ns(steps, args.number, args.repeat)

    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"best of {args.repeat} x {args.number} calls, ns per event\n")

    delta = orjson.loads(AUDIO_DELTA)["delta"]
    audio = ns(
        loads=lambda: orjson.loads(AUDIO_DELTA),
        b64=lambda: pybase64.b64decode(delta, validate=True),
        floor=lambda: pybase64.b64decode(orjson.loads(AUDIO_DELTA)["delta"], validate=True),
        decode=lambda: codec.decode(AUDIO_DELTA),
    )
    loads, floor, decode = audio["loads"], audio["floor"], audio["decode"]
    print(f"audio delta, 960 bytes PCM16 ({len(AUDIO_DELTA)}-byte frame)")
    print(f"  orjson.loads alone          {loads:8.0f}")
    print(f"  pybase64 decode of the delta {audio['b64']:8.0f}")
    print(f"  floor: loads + b64 decode   {floor:8.0f}   {floor / loads:4.2f}x loads")
    print(f"  OpenAICodec.decode          {decode:8.0f}   {decode / loads:4.2f}x loads")
    print(f"  codec's own share           {decode - floor:8.0f}   (decode - floor)\n")

    print("decode (frame -> neutral event)")
    for name, frame in [
        ("response.output_audio_transcript.delta", TRANSCRIPT_DELTA),
        ("response.done", RESPONSE_DONE),
        ("session.updated", SESSION_UPDATED),
        ("response.function_call_arguments.done", TOOL_CALL_DONE),
    ]:
        cost = ns(
            decode=lambda frame=frame: codec.decode(frame),  # type: ignore[misc]
            loads=lambda frame=frame: orjson.loads(frame),  # type: ignore[misc]
        )
        print(
            f"  {name:40s} {cost['decode']:8.0f}   ({cost['decode'] / cost['loads']:4.2f}x loads)"
        )

    print("\nencode (neutral event -> dicts | str frames | bytes frames | str frames + encode)")
    for name, event in [
        ("input_audio_buffer.append (960 bytes)", AudioInputAppend(AUDIO_960)),
        ("conversation.item.truncate", ItemTruncate("item_t2_asst01", 3, event_id="evt_c")),
        ("tool.result", ToolResult("call_t3_Xy12", '{"temp_c":18,"conditions":"cloudy"}')),
    ]:
        cost = ns(
            encode=lambda event=event: codec.encode(event),  # type: ignore[misc]
            frames=lambda event=event: codec.encode_frames(event),  # type: ignore[misc]
            wire=lambda event=event: codec.encode_wire(event),  # type: ignore[misc]
            roundtrip=lambda event=event: [  # type: ignore[misc]
                frame.encode() for frame in codec.encode_frames(event)
            ],
        )
        print(
            f"  {name:40s} {cost['encode']:8.0f} | {cost['frames']:6.0f} | {cost['wire']:6.0f}"
            f" | {cost['roundtrip']:6.0f}"
        )


if __name__ == "__main__":
    main()
