"""A rule script for the embedded server, and the synthetic voice it speaks with.

A :class:`RuleScript` is a :data:`~kernl_trio.local.replies.Responder`: the server calls it
for each response and it answers from a list of :class:`Rule` s matched against the last
user text (a typed message, or the transcript of committed audio)::

    script = RuleScript(
        [
            Rule(
                pattern=r"weather in (?P<city>[a-z]+)",
                say="Let me check the weather in {city}.",
                tool="get_weather",
                then_say="In {city} it is {temp_c} degrees and {conditions}.",
            ),
            Rule(keywords=("hello", "hi"), say="Hello! Ask me about the weather."),
        ],
        fallback="Sorry, I only know about the weather.",
    )

The named groups of ``pattern`` become the tool's arguments (plus ``arguments``) and fill
``{...}`` fields of ``say``; once the tool's output is in the conversation, the next response
speaks ``then_say`` with the fields of the output (a JSON object) as well. It is a script, not
a model: it understands nothing, and the tests that use it say exactly what will happen.

Speech is synthesized (:func:`synthesize_speech`): a buzz of harmonics shaped by vowel-like
formants, one short segment per character, so a reply's duration follows its text. Nothing is
downloaded and no speech engine is needed; it sounds like a robot humming the sentence.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import orjson

from ..audio import Transcoder
from ..protocol.config import PCM16_24K, PCMA_8K, PCMU_8K, AudioEncoding, AudioFormat
from .replies import AudioReply, Reply, ReplyPart, ResponseRequest, TextReply, ToolCallReply

# -- the synthetic voice ------------------------------------------------------------------------

# First two formants (Hz) of the vowel-ish sound each letter gets; consonants are quieter.
_VOWELS: dict[str, tuple[float, float]] = {
    "a": (800.0, 1200.0),
    "e": (500.0, 1900.0),
    "i": (320.0, 2300.0),
    "o": (500.0, 900.0),
    "u": (330.0, 800.0),
    "y": (300.0, 2100.0),
}
_NASAL = (280.0, 1400.0)
_FRICATIVES = frozenset("cfhjsvxz")
_PLOSIVES = frozenset("bdgkpqt")


@attrs.frozen
class Voice:
    """How :func:`synthesize_speech` sounds: ``ms_per_char`` of audio per character of text,
    at most ``max_ms`` in all, around ``pitch_hz``, at an RMS level near ``level_dbfs``."""

    pitch_hz: float = 120.0
    ms_per_char: int = 60
    max_ms: int = 10_000
    level_dbfs: float = -20.0

    def duration_ms(self, text: str) -> int:
        """The length of :func:`synthesize_speech` for ``text``, in whole milliseconds."""
        return min(len(text) * self.ms_per_char, self.max_ms)


def synthesize_speech(
    text: str, audio_format: AudioFormat = PCM16_24K, voice: Voice | None = None
) -> bytes:
    """Robot speech for ``text``: exactly ``voice.duration_ms(text)`` ms of ``audio_format``.

    Letters are voiced (vowels loud, consonants softer, ``s``/``f``-like letters a hiss,
    ``t``/``k``-like letters a click), spaces and punctuation are silent, the pitch falls over
    a statement and rises at the end of a question. Deterministic: the same text gives the
    same bytes.
    """
    voice = voice if voice is not None else Voice()
    rate = audio_format.rate
    total_ms = voice.duration_ms(text)
    n = round(total_ms * rate / 1000)
    out = np.zeros(n, dtype=np.float64)
    if n and text:
        slot = n / len(text)
        question = text.rstrip().endswith("?")
        phase = 0.0
        rng = np.random.default_rng(len(text))
        for index, char in enumerate(text.lower()):
            start, stop = round(index * slot), round((index + 1) * slot)
            if stop <= start:
                continue
            progress = index / max(1, len(text) - 1)
            contour = 1.15 - 0.3 * progress
            if question and progress > 0.8:
                contour += 1.5 * (progress - 0.8)
            f0 = voice.pitch_hz * contour
            segment, phase = _segment(char, stop - start, rate, f0, phase, rng)
            out[start:stop] = segment
        voiced = out[out != 0]
        if voiced.size:
            rms = float(np.sqrt(np.mean(voiced * voiced)))
            out *= (10 ** (voice.level_dbfs / 20) * 32768) / rms
    pcm = np.clip(np.rint(out), -32768, 32767).astype("<i2").tobytes()
    if audio_format.encoding is AudioEncoding.PCM16:
        return pcm
    encoder = Transcoder(AudioFormat(AudioEncoding.PCM16, rate), audio_format)
    return encoder.convert(pcm) + encoder.flush()


def _segment(
    char: str, n: int, rate: int, f0: float, phase: float, rng: np.random.Generator
) -> tuple[np.ndarray[Any, np.dtype[np.float64]], float]:
    if not char.isalpha():
        return np.zeros(n), phase
    fade = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (0.004 * rate))
    if char in _FRICATIVES:
        noise = rng.standard_normal(n)
        hiss = noise - np.concatenate(([0.0], noise[:-1]))  # tilt towards high frequencies
        return 0.15 * hiss * fade, phase
    if char in _PLOSIVES:
        burst = np.zeros(n)
        length = min(n, int(0.012 * rate))
        burst[:length] = rng.standard_normal(length) * np.linspace(0.5, 0.0, length)
        return burst, phase
    formants = _VOWELS.get(char, _NASAL)
    level = 1.0 if char in _VOWELS else 0.45
    # One period of the harmonics, repeated: the pitch is rounded to a whole number of samples
    # per period, which keeps this cheap (the server synthesizes inside the event loop).
    period = max(2, round(rate / f0))
    f0 = rate / period
    harmonics = np.arange(1, max(2, int(min(4000.0, rate / 2 - 200) / f0)) + 1)
    frequencies = harmonics * f0
    gains = sum(1.0 / (1.0 + ((frequencies - f) / 90.0) ** 2) for f in formants) / np.sqrt(
        harmonics
    )
    k = np.arange(period)
    cycle = gains @ np.sin(np.outer(harmonics, 2 * np.pi * k / period))
    start = round(phase / (2 * np.pi) * period) % period
    wave = cycle[(start + np.arange(n)) % period]
    phase = (phase + 2 * np.pi * n / period) % (2 * np.pi)
    return level * wave * fade, phase


def wire_format(audio_format: Mapping[str, Any]) -> AudioFormat:
    """The :class:`AudioFormat` of a GA wire format object (``{"type": "audio/pcm", ...}``)."""
    kind = audio_format.get("type", "audio/pcm")
    if kind == "audio/pcmu":
        return PCMU_8K
    if kind == "audio/pcma":
        return PCMA_8K
    return AudioFormat(AudioEncoding.PCM16, int(audio_format.get("rate", 24000)))


# -- the rule script ------------------------------------------------------------------------


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _names(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _fill(template: str, fields: Mapping[str, Any], *, summary: bool = False) -> str:
    """``template`` with its ``{names}`` from ``fields``, never with a placeholder left.

    A clause (between commas) whose fields are missing is left out; so is a sentence whose
    first clause is. If nothing is left, the answer is a plain list of the fields (with
    ``summary``, for a tool's output) or the template without its placeholders.
    """
    known = {k: v for k, v in fields.items() if k != "output"}
    if _names(template) <= fields.keys():
        return template.format_map(fields)
    sentences = []
    for sentence in _SENTENCE_END.split(template.strip()):
        ending = sentence[-1] if sentence and sentence[-1] in ".!?" else ""
        body = sentence[: len(sentence) - len(ending)]
        clauses = body.split(", ")
        kept = [c for c in clauses if _names(c) <= fields.keys()]
        if not kept or kept[0] is not clauses[0]:
            continue
        sentences.append(", ".join(kept).format_map(fields) + ending)
    if sentences:
        return " ".join(sentences)
    if summary and known:
        listed = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in known.items())
        return f"Here is what I found: {listed}."
    bare = string.Formatter().parse(template)
    return " ".join("".join(text for text, _, _, _ in bare).split())


def _words(words: Iterable[str]) -> tuple[str, ...]:
    if isinstance(words, str):
        return (words,)
    return tuple(words)


@attrs.frozen
class Rule:
    """One rule: when the last user text matches, say something and/or call a tool.

    It matches when any of ``keywords`` occurs as a whole word (case-insensitive), or when
    ``pattern`` (a regular expression, case-insensitive) is found. ``say`` is spoken first;
    then ``tool`` is called with the pattern's named groups plus ``arguments``. Once the
    tool's output is back, the follow-up response speaks ``then_say`` (or ``on_error`` when
    the output is a JSON object with an ``"error"`` key). Templates take ``{name}`` fields:
    the named groups, the tool output's keys and ``{output}`` (the output as sent).
    """

    keywords: tuple[str, ...] = attrs.field(default=(), converter=_words)
    pattern: str | None = None
    say: str | None = None
    tool: str | None = None
    arguments: Mapping[str, Any] = attrs.field(factory=dict)
    then_say: str | None = None
    on_error: str = "Sorry, that did not work: {error}."

    def match(self, text: str) -> dict[str, str] | None:
        """The named groups when the rule matches ``text`` (``{}`` without a pattern)."""
        if self.pattern is not None:
            found = re.search(self.pattern, text, re.IGNORECASE)
            if found is not None:
                return {k: v for k, v in found.groupdict().items() if v is not None}
        words = set(re.findall(r"[\w']+", text.lower()))
        if any(keyword.lower() in words for keyword in self.keywords):
            return {}
        return None


def _rules(rules: Iterable[Rule]) -> tuple[Rule, ...]:
    return tuple(rules)


@attrs.frozen
class RuleScript:
    """A responder that answers from :class:`Rule` s (see the module docstring).

    Audio replies are synthesized with ``voice`` in the session's output format and streamed
    ``chunk_ms`` per delta; with ``realtime`` paced in trio time, otherwise sent at once (the
    real API also sends faster than real time). A session configured for text output gets
    text replies. When no rule matches, ``fallback`` is said (its ``{text}`` field is the
    user's text), or ``unheard`` when there is no user text at all (audio without a
    transcript).
    """

    rules: tuple[Rule, ...] = attrs.field(converter=_rules)
    fallback: str = "Sorry, I did not understand that."
    unheard: str = "I heard you, but I could not make out the words."
    voice: Voice = attrs.field(factory=Voice)
    chunk_ms: int = 20
    realtime: bool = False

    def __call__(self, request: ResponseRequest) -> Reply:
        text = request.last_user_text()
        rule, groups = self.find(text)
        output = _fresh_tool_output(request.conversation)
        parts: list[ReplyPart] = []
        if output is not None:
            fields: dict[str, Any] = {**groups, "output": output}
            try:
                decoded = orjson.loads(output)
            except orjson.JSONDecodeError:
                decoded = None
            if isinstance(decoded, dict):
                fields.update(decoded)
            else:  # no fields: the tool's words (a JSON string) or its output as it came
                fields["output"] = decoded if isinstance(decoded, str) else output.strip()
            if isinstance(decoded, dict) and "error" in decoded:
                template = rule.on_error if rule is not None else Rule().on_error
            elif rule is not None and rule.then_say is not None and isinstance(decoded, dict):
                template = rule.then_say
            elif fields["output"]:
                template = "Here is what I found: {output}"
            else:
                template = "I found nothing."
            parts.append(self._speak(_fill(template, fields, summary=True), request))
        elif rule is None:
            fallback = _fill(self.fallback, {"text": text}) if text else self.unheard
            parts.append(self._speak(fallback, request))
        else:
            if rule.say is not None:
                parts.append(self._speak(_fill(rule.say, groups), request))
            if rule.tool is not None:
                arguments = {**groups, **rule.arguments}
                parts.append(ToolCallReply(rule.tool, orjson.dumps(arguments).decode()))
            if not parts:
                parts.append(self._speak(self.fallback, request))
        return Reply(tuple(parts), self.chunk_ms, self.realtime)

    def find(self, text: str) -> tuple[Rule | None, dict[str, str]]:
        """The first rule matching ``text`` and its named groups."""
        for rule in self.rules:
            groups = rule.match(text)
            if groups is not None:
                return rule, groups
        return None, {}

    def _speak(self, text: str, request: ResponseRequest) -> ReplyPart:
        if list(request.session.get("output_modalities") or ["audio"]) == ["text"]:
            return TextReply(text)
        audio_format = wire_format(request.session["audio"]["output"]["format"])
        audio = synthesize_speech(text, audio_format, self.voice)
        return AudioReply(text, ms=self.voice.duration_ms(text), audio=audio)


def _fresh_tool_output(conversation: Sequence[dict[str, Any]]) -> str | None:
    """The last function_call_output not yet followed by an assistant or user message."""
    for item in reversed(conversation):
        kind = item.get("type")
        if kind == "function_call_output":
            return str(item.get("output", ""))
        if kind == "message" and item.get("role") in ("user", "assistant"):
            return None
    return None


__all__ = ["Rule", "RuleScript", "Voice", "synthesize_speech", "wire_format"]
