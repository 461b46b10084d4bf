"""The demo conversation: what the user says and when, and how the embedded server answers.

The user's side is a generated WAV file: robot "utterances" (see
:func:`~kernl_trio.testing.rules.synthesize_speech`) separated by silence, timed so that the
second one talks over the assistant's long weather answer and the third one over a lookup that
is still running. The embedded server cannot recognise that audio; it is told the utterances'
texts (:data:`TRANSCRIPTS`) and acts as if it had heard them.
"""

from __future__ import annotations

import attrs

from ..audio import silence
from ..local.rules import Rule, RuleScript, Voice, synthesize_speech
from ..protocol import PCM16_24K, AudioFormat, ServerVAD, SessionConfig, Transcription


@attrs.frozen
class Utterance:
    """The user says ``text`` starting ``at_s`` seconds into the input file."""

    at_s: float
    text: str


USER_TURNS = (
    Utterance(0.5, "What's the weather in Paris?"),
    Utterance(7.0, "Thanks! And what about Rome?"),
    Utterance(9.9, "Never mind, goodbye!"),
)
TRANSCRIPTS = tuple(turn.text for turn in USER_TURNS)
TAIL_S = 1.5
"""Silence after the last utterance (the server hears the end of speech in it)."""

USER_VOICE = Voice(pitch_hz=190.0)
ASSISTANT_VOICE = Voice(pitch_hz=115.0)

SESSION_CONFIG = SessionConfig(
    turn_detection=ServerVAD(
        threshold=0.5,
        prefix_padding_ms=300,
        silence_duration_ms=500,
        create_response=True,
        interrupt_response=True,
    ),
    transcription=Transcription("gpt-4o-mini-transcribe"),
)
"""What the demo asks of the server on top of the agent's config."""


def server_script() -> RuleScript:
    """The embedded server's replies for the demo (also ``kernl-trio serve``'s)."""
    return RuleScript(
        (
            Rule(
                pattern=r"(?:weather in|what about) (?P<city>[a-z]+)",
                say="Let me check the weather in {city}.",
                tool="get_weather",
                then_say=(
                    "Right now in {city} it is {temp_c} degrees and {conditions}, with a light "
                    "wind from the {wind}. Later today expect {later}, so {advice}."
                ),
                on_error="Sorry, I could not get the weather for {city}.",
            ),
            Rule(keywords=("goodbye", "bye"), say="Okay. Goodbye, and have a nice day!"),
            Rule(keywords=("hello", "hi", "hey"), say="Hello! Ask me about the weather anywhere."),
        ),
        fallback="Sorry, I only know about the weather. You said: {text}",
        voice=ASSISTANT_VOICE,
    )


def user_audio(audio_format: AudioFormat = PCM16_24K) -> bytes:
    """The user's side of the conversation: utterances at their times, silence between."""
    out = bytearray()
    for turn in USER_TURNS:
        gap_ms = turn.at_s * 1000 - audio_format.duration_ms(len(out))
        if gap_ms < 0:
            raise ValueError(f"the utterance at {turn.at_s} s overlaps the one before")
        out += silence(audio_format, gap_ms)
        out += synthesize_speech(turn.text, audio_format, USER_VOICE)
    out += silence(audio_format, TAIL_S * 1000)
    return bytes(out)


__all__ = [
    "ASSISTANT_VOICE",
    "SESSION_CONFIG",
    "TAIL_S",
    "TRANSCRIPTS",
    "USER_TURNS",
    "USER_VOICE",
    "Utterance",
    "server_script",
    "user_audio",
]
