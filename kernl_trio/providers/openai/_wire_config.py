"""Session and response configuration <-> the OpenAI GA session object.

Registered on the converter of ``_wire``: audio formats, turn detection, transcription,
function tools, tool choice, :class:`SessionConfig` (both directions), :class:`ResponseConfig`
(encode only: servers never send it) and :class:`SessionInfo` (decode only).

The GA session object nests what the neutral config keeps flat (``audio.input.format``,
``audio.output.voice``, ...), so the SessionConfig hooks are written by hand on top of the
generated hooks of the pieces that do line up. Decoding reads the GA locations first and falls
back to the beta ones (``voice``, ``input_audio_format``, ``turn_detection``,
``max_response_output_tokens``, ... at the session's top level).

What GA has and the neutral config cannot express is left out of a decoded config: MCP tools,
an MCP ``tool_choice``, custom voice objects, ``noise_reduction``, ``tracing``, ``include`` ...
Values outside both the GA and the beta vocabularies (an unknown audio format, turn detection
type, modality or tool choice string) are errors.
"""

from __future__ import annotations

from typing import Any, Literal, cast

from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.strategies import configure_tagged_union

from kernl_trio.errors import EncodeError
from kernl_trio.protocol.config import (
    PCM16_24K,
    PCMA_8K,
    PCMU_8K,
    AudioEncoding,
    AudioFormat,
    FunctionTool,
    ManualTurns,
    Modality,
    ResponseConfig,
    SemanticVAD,
    ServerVAD,
    SessionConfig,
    ToolChoice,
    ToolChoiceFunction,
    Transcription,
    TurnDetection,
)
from kernl_trio.protocol.server import SessionInfo

from ._wire import (
    converter,
    json_object,
    json_type_name,
    make_object_structure_fn,
    structure_float,
    structure_int,
    structure_str,
)

__all__ = [
    "structure_session_config",
    "unstructure_response_config",
    "unstructure_session_config",
]

_ABSENT: Any = object()


def _object_or_empty(value: Any) -> dict[str, Any]:
    return {} if value is None else json_object(value)


def _optional_str(value: Any) -> str | None:
    return None if value is None else structure_str(value)


# --- audio formats ------------------------------------------------------------------------

_FORMATS_BY_NAME: dict[str, AudioFormat] = {
    # beta strings
    "pcm16": PCM16_24K,
    "g711_ulaw": PCMU_8K,
    "g711_alaw": PCMA_8K,
    # GA type names given as bare strings (some proxies normalise to these)
    "audio/pcm": PCM16_24K,
    "audio/pcmu": PCMU_8K,
    "audio/pcma": PCMA_8K,
}
_GA_FORMAT_TYPES: dict[AudioEncoding, str] = {
    AudioEncoding.PCM16: "audio/pcm",
    AudioEncoding.PCMU: "audio/pcmu",
    AudioEncoding.PCMA: "audio/pcma",
}


def structure_audio_format(value: Any, _: Any = AudioFormat) -> AudioFormat:
    """``{"type":"audio/pcm","rate":24000}``, ``{"type":"audio/pcmu"}``, ... or a beta string."""
    name = value if isinstance(value, str) else structure_str(json_object(value)["type"])
    fmt = _FORMATS_BY_NAME.get(name)
    if fmt is None:
        raise ValueError(f"unknown audio format {name!r:.40}")
    if fmt.encoding is AudioEncoding.PCM16 and isinstance(value, dict) and "rate" in value:
        rate = structure_int(value["rate"])
        if rate != fmt.rate:
            return AudioFormat(AudioEncoding.PCM16, rate)
    return fmt


def unstructure_audio_format(fmt: AudioFormat) -> dict[str, Any]:
    if fmt.encoding is AudioEncoding.PCM16:
        if fmt.rate != 24000:
            raise EncodeError(f"OpenAI takes PCM16 at 24000 Hz only, not {fmt.rate} Hz")
        return {"type": "audio/pcm", "rate": 24000}
    if fmt.rate != 8000:
        raise EncodeError(f"OpenAI takes G.711 at 8000 Hz only, not {fmt.rate} Hz")
    return {"type": _GA_FORMAT_TYPES[fmt.encoding]}


converter.register_structure_hook(AudioFormat, structure_audio_format)
converter.register_unstructure_hook(AudioFormat, unstructure_audio_format)


# --- turn detection -----------------------------------------------------------------------

_VAD_TAGS: dict[type[Any], str] = {ServerVAD: "server_vad", SemanticVAD: "semantic_vad"}
for _vad in _VAD_TAGS:
    converter.register_structure_hook(_vad, make_dict_structure_fn(_vad, converter))
    converter.register_unstructure_hook(
        _vad, make_dict_unstructure_fn(_vad, converter, _cattrs_omit_if_default=True)
    )
# The server-side detectors are a union tagged by "type"; "no detection" is JSON null.
configure_tagged_union(
    ServerVAD | SemanticVAD, converter, tag_generator=_VAD_TAGS.__getitem__, tag_name="type"
)
_structure_vad = converter.get_structure_hook(ServerVAD | SemanticVAD)
_unstructure_vad = converter.get_unstructure_hook(ServerVAD | SemanticVAD)
_VAD_TYPES = frozenset(_VAD_TAGS.values())


def structure_turn_detection(value: Any, _: Any = TurnDetection) -> TurnDetection:
    if value is None:
        return ManualTurns()
    tag = structure_str(json_object(value)["type"])
    if tag not in _VAD_TYPES:
        raise ValueError(f"unknown turn detection type {tag!r:.40}")
    detection: TurnDetection = _structure_vad(value, ServerVAD | SemanticVAD)
    return detection


def unstructure_turn_detection(detection: TurnDetection) -> dict[str, Any] | None:
    if isinstance(detection, ManualTurns):
        return None
    wire: dict[str, Any] = _unstructure_vad(detection)
    return wire


converter.register_structure_hook(TurnDetection, structure_turn_detection)
converter.register_unstructure_hook(TurnDetection, unstructure_turn_detection)


# --- transcription, tools, tool choice, token limits ---------------------------------------

converter.register_structure_hook(Transcription, make_object_structure_fn(Transcription))
converter.register_unstructure_hook(
    Transcription, make_dict_unstructure_fn(Transcription, converter, _cattrs_omit_if_default=True)
)
_structure_transcription = converter.get_structure_hook(Transcription)
_unstructure_transcription = converter.get_unstructure_hook(Transcription)


def _description(value: Any, _: Any) -> str:
    return "" if value is None else structure_str(value)


def _parameters(value: Any, _: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {}} if value is None else json_object(value)


converter.register_structure_hook(
    FunctionTool,
    make_dict_structure_fn(
        FunctionTool,
        converter,
        description=override(struct_hook=_description),
        parameters=override(struct_hook=_parameters),
    ),
)
_structure_tool = converter.get_structure_hook(FunctionTool)
_unstructure_tool_fields = make_dict_unstructure_fn(FunctionTool, converter)


def unstructure_tool(tool: FunctionTool) -> dict[str, Any]:
    """GA function tools are flat: ``{type:"function", name, description, parameters}``."""
    wire: dict[str, Any] = {"type": "function"}
    wire.update(_unstructure_tool_fields(tool))
    return wire


converter.register_unstructure_hook(FunctionTool, unstructure_tool)


def _structure_tools(value: Any, _: Any = None) -> tuple[FunctionTool, ...]:
    if not isinstance(value, list):
        raise TypeError(f"expected an array of tools, got {json_type_name(value)}")
    tools = []
    for tool in value:
        kind = json_object(tool).get("type", "function")
        if kind == "function":
            tools.append(_structure_tool(tool, FunctionTool))
        else:
            structure_str(kind)  # MCP and other non-function tools are left out
    return tuple(tools)


_TOOL_CHOICE_MODES = frozenset(["auto", "none", "required"])


def structure_tool_choice(value: Any, _: Any = ToolChoice) -> ToolChoice | None:
    """A mode string, ``{type:"function",name}``; ``None`` for an MCP choice."""
    if isinstance(value, str):
        if value not in _TOOL_CHOICE_MODES:
            raise ValueError(f"unknown tool_choice {value!r:.40}")
        return cast(Literal["auto", "none", "required"], value)
    kind = structure_str(json_object(value)["type"])
    if kind == "function":
        return ToolChoiceFunction(structure_str(value["name"]))
    return None


def unstructure_tool_choice(choice: ToolChoice) -> str | dict[str, Any]:
    if isinstance(choice, ToolChoiceFunction):
        return {"type": "function", "name": choice.name}
    return choice


def structure_max_output_tokens(value: Any, _: Any = int) -> int | Literal["inf"]:
    if value == "inf" and isinstance(value, str):
        return "inf"
    return structure_int(value)


_structure_modalities = converter.get_structure_hook(tuple[Modality, ...])


def _passthrough(value: Any) -> Any:
    return value


# --- SessionConfig <-> GA session object ---------------------------------------------------


def _pick(primary: dict[str, Any], key: str, fallback: dict[str, Any], beta_key: str) -> Any:
    """``primary[key]`` if present, else the beta location, else ``_ABSENT``."""
    if key in primary:
        return primary[key]
    return fallback.get(beta_key, _ABSENT)


def _opt(raw: Any, hook: Any) -> Any:
    return None if raw is None or raw is _ABSENT else hook(raw, None)


def _voice(value: Any) -> str | None:
    if value is None or value is _ABSENT:
        return None
    if isinstance(value, str):
        return value
    json_object(value)  # a custom voice ({"id": ...}) has no neutral spelling
    return None


def structure_session_config(value: Any, _: Any = SessionConfig) -> SessionConfig:
    """A GA (or beta) session object -> SessionConfig; absent or null fields stay unset."""
    session = json_object(value)
    audio = _object_or_empty(session.get("audio"))
    audio_in = _object_or_empty(audio.get("input"))
    audio_out = _object_or_empty(audio.get("output"))

    voice = _pick(audio_out, "voice", session, "voice")
    detection = _pick(audio_in, "turn_detection", session, "turn_detection")
    return SessionConfig(
        instructions=_optional_str(session.get("instructions")),
        tools=_opt(session.get("tools"), _structure_tools),
        tool_choice=_opt(session.get("tool_choice"), structure_tool_choice),
        modalities=_opt(
            _pick(session, "output_modalities", session, "modalities"), _structure_modalities
        ),
        voice=_voice(voice),
        input_format=_opt(
            _pick(audio_in, "format", session, "input_audio_format"), structure_audio_format
        ),
        output_format=_opt(
            _pick(audio_out, "format", session, "output_audio_format"), structure_audio_format
        ),
        turn_detection=None if detection is _ABSENT else structure_turn_detection(detection),
        transcription=_opt(
            _pick(audio_in, "transcription", session, "input_audio_transcription"),
            _structure_transcription,
        ),
        speed=_opt(_pick(audio_out, "speed", session, "speed"), structure_float),
        max_output_tokens=_opt(
            _pick(session, "max_output_tokens", session, "max_response_output_tokens"),
            structure_max_output_tokens,
        ),
    )


def unstructure_session_config(config: SessionConfig) -> dict[str, Any]:
    """SessionConfig -> the GA session object of ``session.update`` (set fields only)."""
    session: dict[str, Any] = {"type": "realtime"}
    if config.instructions is not None:
        session["instructions"] = config.instructions
    if config.modalities is not None:
        session["output_modalities"] = list(config.modalities)
    audio_in: dict[str, Any] = {}
    if config.input_format is not None:
        audio_in["format"] = unstructure_audio_format(config.input_format)
    if config.transcription is not None:
        audio_in["transcription"] = _unstructure_transcription(config.transcription)
    if config.turn_detection is not None:
        audio_in["turn_detection"] = unstructure_turn_detection(config.turn_detection)
    audio_out: dict[str, Any] = {}
    if config.output_format is not None:
        audio_out["format"] = unstructure_audio_format(config.output_format)
    if config.voice is not None:
        audio_out["voice"] = config.voice
    if config.speed is not None:
        audio_out["speed"] = config.speed
    if audio_in or audio_out:
        audio = session["audio"] = {}
        if audio_in:
            audio["input"] = audio_in
        if audio_out:
            audio["output"] = audio_out
    if config.tools is not None:
        session["tools"] = [unstructure_tool(tool) for tool in config.tools]
    if config.tool_choice is not None:
        session["tool_choice"] = unstructure_tool_choice(config.tool_choice)
    if config.max_output_tokens is not None:
        session["max_output_tokens"] = config.max_output_tokens
    return session


converter.register_structure_hook(SessionConfig, structure_session_config)
converter.register_unstructure_hook(SessionConfig, unstructure_session_config)


def structure_session_info(value: Any, _: Any = SessionInfo) -> SessionInfo:
    session = json_object(value)
    return SessionInfo(
        id=_optional_str(session.get("id")),
        config=structure_session_config(session),
        model=_optional_str(session.get("model")),
    )


converter.register_structure_hook(SessionInfo, structure_session_info)


# --- ResponseConfig -> response.create "response" ------------------------------------------

unstructure_response_config = make_dict_unstructure_fn(
    ResponseConfig,
    converter,
    _cattrs_omit_if_default=True,
    modalities=override(rename="output_modalities"),
    tool_choice=override(unstruct_hook=unstructure_tool_choice),
    max_output_tokens=override(unstruct_hook=_passthrough),
)
converter.register_unstructure_hook(ResponseConfig, unstructure_response_config)
