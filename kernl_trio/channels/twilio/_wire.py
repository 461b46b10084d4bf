"""The Twilio Media Streams wire: messages as attrs classes, one cattrs converter.

Twilio sends JSON text frames with an ``"event"`` discriminator (protocols.md D.2): connected,
start, media, dtmf, mark, stop. The bridge sends media, mark and clear (D.3). This module owns
the one :data:`converter` for this wire, in both directions; field names are camelCase on the
wire and snake_case here.

Twilio writes numeric-looking fields (``sequenceNumber``, ``chunk``, ``timestamp``) as strings
of digits; integer fields here accept a digit string or a JSON integer and nothing else. Every
other hook is strict: a JSON number is never accepted where a string belongs. A frame that
cannot be decoded raises :class:`~kernl_trio.errors.FrameDecodeError` carrying the frame, and
nothing else escapes :func:`decode`.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable
from typing import Any

import attrs
import cattrs
import orjson
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ...errors import FrameDecodeError

__all__ = [
    "Clear",
    "Connected",
    "Dtmf",
    "DtmfInfo",
    "Mark",
    "MarkInfo",
    "Media",
    "MediaFormat",
    "MediaInfo",
    "OutboundMedia",
    "OutboundMessage",
    "OutboundPayload",
    "Start",
    "StartInfo",
    "Stop",
    "StopInfo",
    "TwilioMessage",
    "converter",
    "decode",
    "encode",
]


# --- Twilio -> bridge ----------------------------------------------------------------------


@attrs.frozen
class MediaFormat:
    encoding: str = "audio/x-mulaw"
    sample_rate: int = 8000
    channels: int = 1


@attrs.frozen
class StartInfo:
    """The ``start`` object: who is calling and how the stream is set up."""

    stream_sid: str
    call_sid: str
    account_sid: str | None = None
    tracks: tuple[str, ...] = ("inbound",)
    custom_parameters: dict[str, str] = attrs.field(factory=dict)
    media_format: MediaFormat = MediaFormat()


@attrs.frozen
class MediaInfo:
    payload: bytes = attrs.field(repr=lambda a: f"<{len(a)} bytes>")
    track: str = "inbound"
    chunk: int | None = None
    timestamp: int | None = None


@attrs.frozen
class DtmfInfo:
    digit: str
    track: str | None = None


@attrs.frozen
class MarkInfo:
    name: str


@attrs.frozen
class StopInfo:
    account_sid: str | None = None
    call_sid: str | None = None


@attrs.frozen
class Connected:
    event = "connected"
    protocol: str | None = None
    version: str | None = None


@attrs.frozen
class Start:
    event = "start"
    start: StartInfo
    stream_sid: str | None = None
    sequence_number: int | None = None


@attrs.frozen
class Media:
    event = "media"
    media: MediaInfo
    stream_sid: str | None = None
    sequence_number: int | None = None


@attrs.frozen
class Dtmf:
    event = "dtmf"
    dtmf: DtmfInfo
    stream_sid: str | None = None
    sequence_number: int | None = None


@attrs.frozen
class Mark:
    """A mark: sent by the bridge after media, echoed by Twilio once played or cleared."""

    event = "mark"
    mark: MarkInfo
    stream_sid: str | None = None
    sequence_number: int | None = None


@attrs.frozen
class Stop:
    event = "stop"
    stop: StopInfo = StopInfo()
    stream_sid: str | None = None
    sequence_number: int | None = None


TwilioMessage = Connected | Start | Media | Dtmf | Mark | Stop


# --- bridge -> Twilio ----------------------------------------------------------------------


@attrs.frozen
class OutboundPayload:
    payload: bytes = attrs.field(repr=lambda a: f"<{len(a)} bytes>")


@attrs.frozen
class OutboundMedia:
    """Audio for Twilio to queue for playback: raw u-law 8 kHz, any length."""

    event = "media"
    stream_sid: str
    media: OutboundPayload


@attrs.frozen
class Clear:
    """Flush everything Twilio has queued and not played; pending marks come back."""

    event = "clear"
    stream_sid: str


OutboundMessage = OutboundMedia | Mark | Clear


# --- the converter -------------------------------------------------------------------------

converter = cattrs.Converter(detailed_validation=False, unstruct_collection_overrides={tuple: list})
"""The one converter for the Twilio Media Streams wire (both directions)."""


def _json_type(value: object) -> str:
    return {str: "string", int: "number", float: "number", bool: "boolean", list: "array"}.get(
        type(value), "object" if isinstance(value, dict) else type(value).__name__
    )


def _structure_str(value: Any, _: Any = str) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a string, got {_json_type(value)}")


def _structure_int(value: Any, _: Any = int) -> int:
    """A JSON integer or a string of digits (Twilio's numeric fields are strings)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    raise TypeError(f"expected digits, got {_json_type(value)} {value!r}")


def _structure_parameters(value: Any, _: Any = dict) -> dict[str, str]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {_json_type(value)}")
    return {str(k): v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in value.items()}


def _structure_tracks(value: Any, _: Any = tuple) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise TypeError(f"expected an array, got {_json_type(value)}")
    return tuple(_structure_str(v) for v in value)


def _b64decode(value: Any, _: Any = bytes) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"expected base64 text, got {_json_type(value)}")
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except binascii.Error as exc:
        raise ValueError(f"invalid base64: {exc}") from None


def _b64encode(value: bytes) -> str:
    return binascii.b2a_base64(value, newline=False).decode("ascii")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _optional(hook: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def structure(value: Any, cls: Any) -> Any:
        return None if value is None else hook(value, cls)

    return structure


converter.register_structure_hook(str, _structure_str)
converter.register_structure_hook(int, _structure_int)
# Direct hooks for the optional scalars: cattrs' generic Optional dispatch costs ~1 us a field.
converter.register_structure_hook_func(lambda t: t == str | None, _optional(_structure_str))
converter.register_structure_hook_func(lambda t: t == int | None, _optional(_structure_int))
converter.register_structure_hook(bytes, _b64decode)
converter.register_unstructure_hook(bytes, _b64encode)

_FIELD_HOOKS: dict[tuple[type[Any], str], Callable[[Any, Any], Any]] = {
    (StartInfo, "custom_parameters"): _structure_parameters,
    (StartInfo, "tracks"): _structure_tracks,
}

_CLASSES: tuple[type[Any], ...] = (
    MediaFormat,
    StartInfo,
    MediaInfo,
    DtmfInfo,
    MarkInfo,
    StopInfo,
    Connected,
    Start,
    Media,
    Dtmf,
    Mark,
    Stop,
    OutboundPayload,
    OutboundMedia,
    Clear,
)
for _cls in _CLASSES:  # simpler classes first: a hook is generated from its fields' hooks
    _renames: dict[str, Any] = {f.name: override(rename=_camel(f.name)) for f in attrs.fields(_cls)}
    _structure: dict[str, Any] = {
        f.name: override(rename=_camel(f.name), struct_hook=_FIELD_HOOKS.get((_cls, f.name)))
        for f in attrs.fields(_cls)
    }
    converter.register_structure_hook(_cls, make_dict_structure_fn(_cls, converter, **_structure))
    converter.register_unstructure_hook(
        _cls, make_dict_unstructure_fn(_cls, converter, _cattrs_omit_if_default=True, **_renames)
    )

_INBOUND: dict[str, type[Any]] = {
    cls.event: cls for cls in (Connected, Start, Media, Dtmf, Mark, Stop)
}
_STRUCTURE: dict[str, Callable[[Any, Any], Any]] = {
    event: converter.get_structure_hook(cls) for event, cls in _INBOUND.items()
}
_UNSTRUCTURE: dict[type[Any], Callable[[Any], Any]] = {
    cls: converter.get_unstructure_hook(cls) for cls in (OutboundMedia, Mark, Clear)
}


def decode(frame: str | bytes) -> TwilioMessage:
    """One Twilio frame -> its message. Raises :class:`FrameDecodeError` and nothing else."""
    if isinstance(frame, bytes):
        raise FrameDecodeError("binary frames are not part of the Twilio protocol", frame)
    try:
        raw = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise FrameDecodeError(f"not JSON: {exc}", frame) from None
    if not isinstance(raw, dict):
        raise FrameDecodeError(f"expected a JSON object, got {_json_type(raw)}", frame)
    event = raw.get("event")
    if not isinstance(event, str) or event not in _STRUCTURE:
        raise FrameDecodeError(f"unknown event {event!r}", frame)
    try:
        message: TwilioMessage = _STRUCTURE[event](raw, _INBOUND[event])
    except KeyError as exc:
        raise FrameDecodeError(f"{event}: missing field {exc}", frame) from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise FrameDecodeError(f"{event}: {exc}", frame) from None
    return message


def encode(message: OutboundMessage | TwilioMessage) -> str:
    """One message -> its JSON text frame (the ``event`` field first)."""
    hook = _UNSTRUCTURE.get(type(message)) or converter.get_unstructure_hook(type(message))
    body = hook(message)
    return orjson.dumps({"event": message.event, **body}).decode()
