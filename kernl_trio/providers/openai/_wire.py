"""The cattrs converter for the OpenAI Realtime GA wire: primitives, audio bytes and items.

This module owns the one :data:`converter` used in both directions. It registers strict hooks
for JSON scalars (a JSON number is never accepted where a string belongs, nor a string for a
number: cattrs' defaults would coerce with ``str()``/``int()``), base64 <-> ``bytes``
(``binascii``, decoded exactly once here), and conversation items. ``_wire_config`` adds the
session configuration hooks and ``_wire_events`` the event hooks, in that order: cattrs
resolves the hooks of a class's fields when it generates the class's hook, so simpler types are
registered first.

Every structure hook raises ``KeyError`` (missing field), ``TypeError`` (wrong JSON type) or
``ValueError`` (wrong value); the codec turns them into ``FrameDecodeError``.
"""

from __future__ import annotations

import binascii
import enum
import typing
from collections.abc import Callable
from types import NoneType, UnionType
from typing import Any, Literal, get_args, get_origin

import cattrs
import pybase64
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn

from kernl_trio._json import (
    check_bool,
    check_int,
    check_number,
    check_object,
    check_str,
    json_type_name,
)
from kernl_trio.protocol.common import RealtimeError, ResponseStatus
from kernl_trio.protocol.config import AudioEncoding
from kernl_trio.protocol.items import (
    ContentPart,
    InputAudio,
    InputImage,
    InputText,
    Item,
    MessageItem,
    OutputAudio,
    OutputText,
    ProviderItem,
    ToolCallItem,
    ToolResultItem,
)

__all__ = [
    "b64decode",
    "b64encode",
    "converter",
    "json_object",
    "json_type_name",
    "make_object_structure_fn",
    "structure_bool",
    "structure_float",
    "structure_int",
    "structure_str",
]

converter = cattrs.Converter(
    detailed_validation=False,
    unstruct_collection_overrides={tuple: list},
)
"""The one converter for the OpenAI GA wire (both directions)."""

StructureHook = Callable[[Any, Any], Any]

# The strict JSON checks shared with the tool schema code (kernl_trio._json), under the
# names the wire modules use; each is a cattrs structure hook as it is.
structure_str = check_str
structure_int = check_int
structure_float = check_number
structure_bool = check_bool
json_object = check_object


def b64decode(value: Any, _: Any = bytes) -> bytes:
    """Base64 text -> bytes: the one place where audio is decoded."""
    if not isinstance(value, str):
        raise TypeError(f"expected base64 text, got {json_type_name(value)}")
    try:
        # pybase64 (SIMD) rather than binascii: this runs for every audio delta
        return pybase64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"invalid base64: {exc}") from None


def b64encode(value: bytes) -> str:
    return pybase64.b64encode_as_string(value)


converter.register_structure_hook(str, structure_str)
converter.register_structure_hook(int, structure_int)
converter.register_structure_hook(float, structure_float)
converter.register_structure_hook(bool, structure_bool)
converter.register_structure_hook(bytes, b64decode)
converter.register_unstructure_hook(bytes, b64encode)


def _is_json_object(t: Any) -> bool:
    return t is dict or (get_origin(t) is dict and get_args(t)[0] is str)


converter.register_structure_hook_func(_is_json_object, json_object)


def _is_optional(t: Any) -> bool:
    if get_origin(t) not in (typing.Union, UnionType):
        return False
    args = get_args(t)
    return len(args) == 2 and NoneType in args


def _optional_factory(t: Any) -> StructureHook:
    """``X | None``: the hook of ``X`` is resolved once, not on every call."""
    inner = next(a for a in get_args(t) if a is not NoneType)
    hook = converter.get_structure_hook(inner)

    def structure_optional(value: Any, _: Any) -> Any:
        return None if value is None else hook(value, inner)

    return structure_optional


def _is_literal(t: Any) -> bool:
    return get_origin(t) is Literal


def _literal_factory(t: Any) -> StructureHook:
    allowed = frozenset(get_args(t))
    shown = ", ".join(repr(a) for a in get_args(t))

    def structure_literal(value: Any, _: Any) -> Any:
        if isinstance(value, str) and value in allowed:
            return value
        raise ValueError(f"expected one of {shown}, got {value!r:.40}")

    return structure_literal


def _is_homogeneous_tuple(t: Any) -> bool:
    args = get_args(t)
    return get_origin(t) is tuple and len(args) == 2 and args[1] is Ellipsis


def _tuple_factory(t: Any) -> StructureHook:
    """``tuple[X, ...]`` from a JSON array only (a string or object is not a sequence here)."""
    inner = get_args(t)[0]
    hook = converter.get_structure_hook(inner)

    def structure_tuple(value: Any, _: Any) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise TypeError(f"expected an array, got {json_type_name(value)}")
        return tuple([hook(v, inner) for v in value])

    return structure_tuple


def _structure_str_enum(enum_cls: type[enum.StrEnum]) -> StructureHook:
    def structure_enum(value: Any, _: Any) -> Any:
        return enum_cls(structure_str(value))

    return structure_enum


converter.register_structure_hook_factory(_is_optional, _optional_factory)
converter.register_structure_hook_factory(_is_literal, _literal_factory)
converter.register_structure_hook_factory(_is_homogeneous_tuple, _tuple_factory)
# Hooks registered by class also catch subclasses, so every StrEnum on this wire needs its own
# hook, or the str hook would let any string through.
for _enum in (ResponseStatus, AudioEncoding):
    converter.register_structure_hook(_enum, _structure_str_enum(_enum))


# --- nested objects, errors ----------------------------------------------------------------


def make_object_structure_fn(cls: type[Any], **overrides: Any) -> StructureHook:
    """cattrs' generated hook for ``cls``, behind a check that the value is a JSON object.

    For classes nested in an event: the event's own hook already gets an object.
    """
    generated = make_dict_structure_fn(cls, converter, **overrides)

    def structure_object(value: Any, _: Any = cls) -> Any:
        return generated(json_object(value), cls)

    return structure_object


converter.register_structure_hook(RealtimeError, make_object_structure_fn(RealtimeError))


# --- content parts ------------------------------------------------------------------------


class UnmodelledPart(ValueError):
    """A content part type the neutral vocabulary has no class for."""


_PART_TAGS: dict[type[Any], str] = {
    InputText: "input_text",
    InputAudio: "input_audio",
    InputImage: "input_image",
    OutputText: "output_text",
    OutputAudio: "output_audio",
}
# Beta servers (and some GA traffic) spell assistant parts "text"/"audio" inside items.
_PART_ALIASES = {"text": OutputText, "audio": OutputAudio}


def _register_tagged(
    tags: dict[type[Any], str], *, omit_if_default: bool
) -> tuple[dict[str, tuple[StructureHook, type[Any]]], dict[type[Any], Callable[[Any], Any]]]:
    """Generate the hooks of each class of a ``type``-tagged family; return both tables."""
    by_tag: dict[str, tuple[StructureHook, type[Any]]] = {}
    unstructurers: dict[type[Any], Callable[[Any], Any]] = {}
    for cls, tag in tags.items():
        structure = make_object_structure_fn(cls)
        unstructure = make_dict_unstructure_fn(
            cls, converter, _cattrs_omit_if_default=omit_if_default
        )
        converter.register_structure_hook(cls, structure)
        converter.register_unstructure_hook(cls, unstructure)
        by_tag[tag] = (structure, cls)
        unstructurers[cls] = unstructure
    return by_tag, unstructurers


_PART_BY_TAG, _PART_UNSTRUCTURE = _register_tagged(_PART_TAGS, omit_if_default=True)
for _alias, _cls in _PART_ALIASES.items():
    _PART_BY_TAG[_alias] = _PART_BY_TAG[_PART_TAGS[_cls]]


def _structure_part(value: Any, _: Any) -> ContentPart:
    tag = structure_str(json_object(value)["type"])
    entry = _PART_BY_TAG.get(tag)
    if entry is None:
        raise UnmodelledPart(f"content part type {tag!r}")
    hook, cls = entry
    part: ContentPart = hook(value, cls)
    return part


def _unstructure_part(part: ContentPart) -> dict[str, Any]:
    wire: dict[str, Any] = {"type": _PART_TAGS[part.__class__]}
    wire.update(_PART_UNSTRUCTURE[part.__class__](part))
    return wire


converter.register_structure_hook(ContentPart, _structure_part)
converter.register_unstructure_hook(ContentPart, _unstructure_part)


# --- items --------------------------------------------------------------------------------

_ITEM_TAGS: dict[type[Any], str] = {
    MessageItem: "message",
    ToolCallItem: "function_call",
    ToolResultItem: "function_call_output",
}
_ITEM_BY_TAG, _ITEM_UNSTRUCTURE = _register_tagged(_ITEM_TAGS, omit_if_default=True)


def _structure_provider_item(value: Any, _: Any = ProviderItem) -> ProviderItem:
    item_id = value.get("id")
    return ProviderItem(
        type=structure_str(value["type"]),
        raw=value,
        id=item_id if isinstance(item_id, str) else None,
    )


def _structure_item(value: Any, _: Any) -> Item:
    """A GA item; item types (or message parts) the vocabulary lacks become ProviderItem."""
    tag = structure_str(json_object(value)["type"])
    entry = _ITEM_BY_TAG.get(tag)
    if entry is None:
        return _structure_provider_item(value)
    hook, cls = entry
    try:
        item: Item = hook(value, cls)
    except UnmodelledPart:
        return _structure_provider_item(value)
    return item


def _unstructure_item(item: Item) -> dict[str, Any]:
    if isinstance(item, ProviderItem):
        return dict(item.raw)
    wire: dict[str, Any] = {"type": _ITEM_TAGS[item.__class__]}
    wire.update(_ITEM_UNSTRUCTURE[item.__class__](item))
    return wire


converter.register_structure_hook(ProviderItem, _structure_provider_item)
converter.register_unstructure_hook(ProviderItem, lambda item: dict(item.raw))
converter.register_structure_hook(Item, _structure_item)
converter.register_unstructure_hook(Item, _unstructure_item)
