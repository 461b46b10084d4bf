"""The embedded server's rule script and its synthetic voice."""

from __future__ import annotations

import copy
import math
from typing import Any

import orjson
import pytest

from kernl_trio.audio import rms_dbfs
from kernl_trio.protocol import PCM16_24K, PCMA_8K, PCMU_8K, AudioEncoding, AudioFormat
from kernl_trio.testing import AudioReply, ResponseRequest, TextReply, ToolCallReply
from kernl_trio.testing.rules import Rule, RuleScript, Voice, synthesize_speech, wire_format
from kernl_trio.testing.server import DEFAULT_SESSION

WEATHER = Rule(
    pattern=r"weather in (?P<city>[a-z]+)",
    say="Checking {city}.",
    tool="get_weather",
    arguments={"units": "metric"},
    then_say="{city}: {temp_c} degrees, {conditions}.",
    on_error="No weather for {city}: {error}.",
)
GREETING = Rule(keywords=("hello", "hi"), say="Hello there!")
SCRIPT = RuleScript([WEATHER, GREETING], fallback="I only do weather, not '{text}'.")


def _user(text: str | None, *, audio: bool = False) -> dict[str, Any]:
    part = (
        {"type": "input_audio", "transcript": text}
        if audio
        else {"type": "input_text", "text": text}
    )
    return {"type": "message", "role": "user", "content": [part]}


def _request(*items: dict[str, Any], session: dict[str, Any] | None = None) -> ResponseRequest:
    return ResponseRequest({"type": "response.create"}, items, session or DEFAULT_SESSION)


def test_a_pattern_says_its_line_and_calls_the_tool_with_the_groups() -> None:
    reply = SCRIPT(_request(_user("What's the weather in Paris?")))
    spoken, call = reply.parts
    assert isinstance(spoken, AudioReply) and isinstance(call, ToolCallReply)
    assert spoken.transcript == "Checking Paris."
    assert spoken.ms == 15 * 60 and spoken.audio is not None
    assert len(spoken.audio) == spoken.ms * 48
    assert call.name == "get_weather"
    assert orjson.loads(call.arguments) == {"city": "Paris", "units": "metric"}


def test_keywords_match_whole_words_of_a_transcript() -> None:
    reply = SCRIPT(_request(_user("Hi, anyone there?", audio=True)))
    assert [part.transcript for part in reply.parts if isinstance(part, AudioReply)] == [
        "Hello there!"
    ]
    # "this" contains "hi" but is not the word "hi"
    other = SCRIPT(_request(_user("this is odd")))
    assert isinstance(other.parts[0], AudioReply)
    assert other.parts[0].transcript == "I only do weather, not 'this is odd'."


def test_the_follow_up_speaks_the_tool_output() -> None:
    conversation = (
        _user("weather in Rome please"),
        {"type": "message", "role": "assistant", "content": []},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
        {
            "type": "function_call_output",
            "call_id": "c1",
            "output": orjson.dumps({"temp_c": 24, "conditions": "sunny"}).decode(),
        },
    )
    (spoken,) = SCRIPT(_request(*conversation)).parts
    assert isinstance(spoken, AudioReply)
    assert spoken.transcript == "Rome: 24 degrees, sunny."
    # Once answered, the same output does not count again: the rule runs anew.
    answered = (*conversation, {"type": "message", "role": "assistant", "content": []})
    assert isinstance(SCRIPT(_request(*answered)).parts[1], ToolCallReply)


def test_an_error_output_gets_the_error_line() -> None:
    conversation = (
        _user("weather in Oslo"),
        {"type": "function_call_output", "call_id": "c1", "output": '{"error": "timeout"}'},
    )
    (spoken,) = SCRIPT(_request(*conversation)).parts
    assert isinstance(spoken, AudioReply)
    assert spoken.transcript == "No weather for Oslo: timeout."


def test_without_any_user_text_the_script_says_it_could_not_hear() -> None:
    (spoken,) = SCRIPT(_request(_user(None, audio=True))).parts
    assert isinstance(spoken, AudioReply)
    assert spoken.transcript == SCRIPT.unheard


def test_unknown_template_fields_are_never_spoken() -> None:
    script = RuleScript([Rule(keywords=("x",), say="{nothing} here")])
    (spoken,) = script(_request(_user("x"))).parts
    assert isinstance(spoken, AudioReply) and spoken.transcript == "here"


def test_a_tool_output_without_the_template_fields_is_said_with_what_it_has() -> None:
    # The README's get_weather returns no wind, forecast or advice: the demo script's answer
    # keeps the clauses it can fill and drops the others.
    rule = Rule(
        pattern=r"weather in (?P<city>[a-z]+)",
        tool="get_weather",
        then_say="Right now in {city} it is {temp_c} degrees and {conditions}, with a light "
        "wind from the {wind}. Later today expect {later}, so {advice}.",
    )
    script = RuleScript([rule])
    conversation = [
        _user("What's the weather in Paris?"),
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
        {
            "type": "function_call_output",
            "call_id": "c1",
            "output": '{"city": "Paris", "temp_c": 18, "conditions": "cloudy"}',
        },
    ]
    (spoken,) = script(_request(*conversation)).parts
    assert isinstance(spoken, AudioReply)
    assert spoken.transcript == "Right now in Paris it is 18 degrees and cloudy."
    # nothing of the template can be said: the fields the tool gave, plainly
    conversation[-1]["output"] = '{"humidity": 80, "uv_index": 2}'
    (spoken,) = script(_request(*conversation)).parts
    assert isinstance(spoken, AudioReply) and "{" not in spoken.transcript
    assert spoken.transcript == "Here is what I found: city Paris, humidity 80, uv index 2."


def test_text_sessions_get_text_and_g711_sessions_get_g711() -> None:
    text_session = copy.deepcopy(DEFAULT_SESSION)
    text_session["output_modalities"] = ["text"]
    (part,) = SCRIPT(_request(_user("hello"), session=text_session)).parts
    assert part == TextReply("Hello there!")

    ulaw_session = copy.deepcopy(DEFAULT_SESSION)
    ulaw_session["audio"]["output"]["format"] = {"type": "audio/pcmu"}
    (spoken,) = SCRIPT(_request(_user("hello"), session=ulaw_session)).parts
    assert isinstance(spoken, AudioReply) and spoken.audio is not None
    assert len(spoken.audio) == 12 * 60 * 8  # 8 bytes per ms


def test_the_reply_carries_the_scripts_pacing() -> None:
    script = RuleScript([GREETING], chunk_ms=40, realtime=True)
    reply = script(_request(_user("hello")))
    assert (reply.chunk_ms, reply.realtime) == (40, True)


@pytest.mark.parametrize(
    "fmt", [PCM16_24K, PCMU_8K, PCMA_8K, AudioFormat(AudioEncoding.PCM16, 16000)]
)
def test_speech_lasts_as_long_as_the_text_says(fmt: AudioFormat) -> None:
    voice = Voice(ms_per_char=50, max_ms=2000)
    assert len(synthesize_speech("Hello world", fmt, voice)) == 550 * fmt.bytes_per_second // 1000
    long = synthesize_speech("x" * 100, fmt, voice)
    assert len(long) == 2000 * fmt.bytes_per_second // 1000  # capped
    assert synthesize_speech("", fmt, voice) == b""


def test_speech_is_deterministic_loud_enough_and_silent_between_words() -> None:
    audio = synthesize_speech("Hello there, how are you?")
    assert audio == synthesize_speech("Hello there, how are you?")
    voiced = audio[: 5 * 60 * 48]  # "Hello"
    assert -26 < rms_dbfs(voiced) < -14  # around the voice's -20 dBFS
    gap = audio[5 * 60 * 48 : 6 * 60 * 48]  # the space after "Hello"
    assert rms_dbfs(gap) == -math.inf
    assert synthesize_speech("Hello", voice=Voice(pitch_hz=200)) != synthesize_speech("Hello")


def test_wire_formats() -> None:
    assert wire_format({"type": "audio/pcm", "rate": 24000}) == PCM16_24K
    assert wire_format({"type": "audio/pcmu"}) == PCMU_8K
    assert wire_format({"type": "audio/pcma"}) == PCMA_8K


@pytest.mark.parametrize(
    ("output", "said"),
    [
        ('"Sunny all day"', "Here is what I found: Sunny all day"),
        ("22", "Here is what I found: 22"),
        ("not JSON at all", "Here is what I found: not JSON at all"),
        ("", "I found nothing."),
    ],
)
def test_a_tool_output_that_is_not_fields_is_said_as_it_is(output: str, said: str) -> None:
    # a tool returning a plain string (or anything but an object) gives no field to fill the
    # template with; its words are what there is to say, not just the request's city
    rule = Rule(
        pattern=r"weather in (?P<city>[a-z]+)",
        tool="get_weather",
        then_say="Right now in {city} it is {temp_c} degrees.",
    )
    conversation = [
        _user("What's the weather in Paris?"),
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": output},
    ]
    (spoken,) = RuleScript([rule])(_request(*conversation)).parts
    assert isinstance(spoken, AudioReply) and spoken.transcript == said
