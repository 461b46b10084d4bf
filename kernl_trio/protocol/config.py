"""Session and response configuration, provider-neutral.

Every field of :class:`SessionConfig` defaults to ``None``, meaning "not set": a config is
also a *partial update* (``session.update_config``), and only the fields that are set go on
the wire. To switch turn detection off, set ``turn_detection=ManualTurns()``.
"""

from __future__ import annotations

import enum
from typing import Any, Literal

import attrs


class AudioEncoding(enum.StrEnum):
    PCM16 = "pcm16"  # signed 16-bit little-endian, mono
    PCMU = "pcmu"  # G.711 mu-law, one byte per sample
    PCMA = "pcma"  # G.711 A-law, one byte per sample


@attrs.frozen
class AudioFormat:
    """An audio stream's encoding and sample rate (mono)."""

    encoding: AudioEncoding = AudioEncoding.PCM16
    rate: int = 24000

    @property
    def sample_width(self) -> int:
        """Bytes per sample: 2 for PCM16, 1 for G.711."""
        return 2 if self.encoding is AudioEncoding.PCM16 else 1

    @property
    def bytes_per_second(self) -> int:
        return self.rate * self.sample_width

    def duration_ms(self, nbytes: int) -> float:
        """Milliseconds of audio in ``nbytes`` bytes of this format."""
        return nbytes * 1000 / self.bytes_per_second


PCM16_24K = AudioFormat(AudioEncoding.PCM16, 24000)
PCMU_8K = AudioFormat(AudioEncoding.PCMU, 8000)
PCMA_8K = AudioFormat(AudioEncoding.PCMA, 8000)

Modality = Literal["audio", "text"]


@attrs.frozen
class ServerVAD:
    """Energy-based voice activity detection on the server."""

    threshold: float | None = None
    prefix_padding_ms: int | None = None
    silence_duration_ms: int | None = None
    idle_timeout_ms: int | None = None
    create_response: bool | None = None
    interrupt_response: bool | None = None


@attrs.frozen
class SemanticVAD:
    """Model-based end-of-turn detection on the server."""

    eagerness: Literal["low", "medium", "high", "auto"] | None = None
    create_response: bool | None = None
    interrupt_response: bool | None = None


@attrs.frozen
class ManualTurns:
    """No server turn detection: the client commits audio and asks for responses."""


TurnDetection = ServerVAD | SemanticVAD | ManualTurns


@attrs.frozen
class Transcription:
    """Input audio transcription settings."""

    model: str
    language: str | None = None
    prompt: str | None = None


@attrs.frozen
class FunctionTool:
    """A function the model may call; ``parameters`` is a JSON Schema object."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = attrs.field(factory=lambda: {"type": "object", "properties": {}})


@attrs.frozen
class ToolChoiceFunction:
    """Force a call of one named function."""

    name: str


ToolChoice = Literal["auto", "none", "required"] | ToolChoiceFunction


@attrs.frozen
class SessionConfig:
    """Session configuration; ``None`` fields are unset (see the module docstring)."""

    instructions: str | None = None
    tools: tuple[FunctionTool, ...] | None = None
    tool_choice: ToolChoice | None = None
    modalities: tuple[Modality, ...] | None = None
    voice: str | None = None
    input_format: AudioFormat | None = None
    output_format: AudioFormat | None = None
    turn_detection: TurnDetection | None = None
    transcription: Transcription | None = None
    speed: float | None = None
    max_output_tokens: int | Literal["inf"] | None = None

    def merged(self, update: SessionConfig) -> SessionConfig:
        """This config with every field that ``update`` sets replaced."""
        changes = {
            f.name: getattr(update, f.name)
            for f in attrs.fields(SessionConfig)
            if getattr(update, f.name) is not None
        }
        return attrs.evolve(self, **changes)


@attrs.frozen
class ResponseConfig:
    """Per-response overrides for ``response.create``; ``None`` fields are unset."""

    instructions: str | None = None
    modalities: tuple[Modality, ...] | None = None
    tool_choice: ToolChoice | None = None
    metadata: dict[str, str] | None = None
    conversation: Literal["auto", "none"] | None = None
    max_output_tokens: int | Literal["inf"] | None = None
