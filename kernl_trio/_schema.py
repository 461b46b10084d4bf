"""JSON Schema and argument checking for function tools (private to :mod:`kernl_trio.tools`).

One table of supported annotations drives both directions, so what the schema promises the
model is exactly what validation accepts:

* :func:`json_schema` turns an annotation into the JSON Schema the model sees;
* :data:`CONVERTER` is a strict cattrs converter: JSON values are checked against the same
  annotations (no ``"5"`` for an ``int``, no ``"abc"`` for a ``list[str]``);
* :class:`Arguments` holds one tool's parameters, its schema and a cached structure hook;
* :func:`parse_docstring` reads docstrings (``docstring_parser``) for descriptions;
* :func:`dumps` serialises a tool's result.

Supported annotations: ``str``, ``int``, ``float``, ``bool``, ``None``, ``Any``,
``Literal[...]``, ``enum.Enum`` subclasses, ``list[X]``, ``Sequence[X]``, ``tuple[X, ...]``,
``tuple[X, Y]``, ``dict[str, X]`` / ``Mapping[str, X]``, attrs classes (nested objects) and
``X | None``.
"""

from __future__ import annotations

import collections.abc
import enum
import inspect
import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import attrs
import cattrs
import docstring_parser
import orjson
from cattrs.cols import (
    homogenous_tuple_structure_factory,
    list_structure_factory,
    mapping_structure_factory,
)
from cattrs.errors import ForbiddenExtraKeysError
from cattrs.v import format_exception as _cattrs_format_exception

from ._json import (
    JsonTypeError,
    check_array,
    check_bool,
    check_int,
    check_number,
    check_object,
    check_str,
)

JsonSchema = dict[str, Any]
StructureHook = Callable[[Any, Any], Any]


class UnsupportedType(TypeError):
    """An annotation that cannot be expressed as JSON Schema (tools.py rewords it)."""


class _Invalid(ValueError):
    """A value sent by the model does not fit its annotation; the message says why."""


# --------------------------------------------------------------------------- docstrings


@attrs.frozen
class Docstring:
    """What a docstring says: its prose, and per-name descriptions of its arguments."""

    description: str = ""
    params: Mapping[str, str] = attrs.field(factory=dict)


def parse_docstring(doc: str | None) -> Docstring:
    """Read a docstring (Google style; reST and NumPy style too) with ``docstring_parser``.

    The description is the prose before the first section (``Args:``, ``Returns:``...),
    kept as written. Descriptions come from the argument sections (``Args:``,
    ``Parameters:``, ``Attributes:``...), continuation lines joined with spaces.
    """
    if not doc:
        return Docstring()
    parsed = docstring_parser.parse(inspect.cleandoc(doc))
    prose = [part for part in (parsed.short_description, parsed.long_description) if part]
    separator = "\n\n" if parsed.blank_after_short_description else "\n"
    params = {
        param.arg_name.lstrip("*"): " ".join(param.description.split())
        for param in parsed.params
        if param.description
    }
    return Docstring(separator.join(prose).strip(), params)


# --------------------------------------------------------------------------- JSON Schema

_SCALARS: Mapping[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_ARRAY_ORIGINS = frozenset({list, collections.abc.Sequence, collections.abc.MutableSequence})
_MAPPING_ORIGINS = frozenset({dict, collections.abc.Mapping, collections.abc.MutableMapping})


def type_name(tp: Any) -> str:
    """A short readable name for an annotation, for messages."""
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__qualname__
    return repr(tp).replace("typing.", "")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    raise UnsupportedType(f"{value!r} is not a JSON scalar")


def _json_value(value: Any) -> Any:
    """A Literal argument or enum member as the JSON scalar the model sends."""
    if isinstance(value, enum.Enum):
        value = value.value
    _json_type(value)
    return value


def _choices_schema(values: Sequence[Any]) -> JsonSchema:
    kinds = {_json_type(v) for v in values}
    schema: JsonSchema = {}
    if len(kinds) == 1:
        schema["type"] = kinds.pop()
    schema["enum"] = list(values)
    return schema


def _is_optional(tp: Any) -> bool:
    args = typing.get_args(tp)
    return _is_union(tp) and len(args) == 2 and type(None) in args


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _homogeneous_tuple(tp: Any) -> bool:
    args = typing.get_args(tp)
    return typing.get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis


def _is_array(tp: Any) -> bool:
    """list, Sequence, MutableSequence and tuple[X, ...], bare or parametrised."""
    if tp in (list, tuple, collections.abc.Sequence, collections.abc.MutableSequence):
        return True
    return typing.get_origin(tp) in _ARRAY_ORIGINS or _homogeneous_tuple(tp)


def _is_fixed_tuple(tp: Any) -> bool:
    return typing.get_origin(tp) is tuple and not _homogeneous_tuple(tp)


def _is_object_map(tp: Any) -> bool:
    return tp in (dict, collections.abc.Mapping) or typing.get_origin(tp) in _MAPPING_ORIGINS


def json_default(value: Any) -> tuple[bool, Any]:
    """``(True, value)`` when a parameter's default can be shown in the schema."""
    try:
        return True, _json_value(value)
    except UnsupportedType:
        return False, None


def json_schema(tp: Any) -> JsonSchema:
    """The JSON Schema of one annotation; raises :class:`UnsupportedType`."""
    return _schema(tp, ())


def _schema(tp: Any, stack: tuple[type, ...]) -> JsonSchema:
    if tp is Any:
        return {}
    if tp is None or tp is type(None):
        return {"type": "null"}
    if tp in _SCALARS:
        return {"type": _SCALARS[tp]}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        return _choices_schema([_json_value(a) for a in args])
    if _is_union(tp):
        if not _is_optional(tp):
            raise UnsupportedType(f"{type_name(tp)}: only unions of the form `X | None` work")
        (inner,) = (a for a in args if a is not type(None))
        return {"anyOf": [_schema(inner, stack), {"type": "null"}]}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if not list(tp):
            raise UnsupportedType(f"enum {type_name(tp)} has no members")
        return _choices_schema([_json_value(m) for m in tp])
    if isinstance(tp, type) and attrs.has(tp):
        return _attrs_schema(tp, stack)
    if origin is not None and attrs.has(origin):
        raise UnsupportedType(f"generic attrs class {type_name(tp)} is not supported")
    if _is_array(tp):
        schema: JsonSchema = {"type": "array"}
        if args:
            schema["items"] = _schema(args[0], stack)
        return schema
    if _is_fixed_tuple(tp):
        if not args:
            raise UnsupportedType(f"{type_name(tp)}: an empty tuple is not supported")
        return {
            "type": "array",
            "prefixItems": [_schema(a, stack) for a in args],
            "minItems": len(args),
            "maxItems": len(args),
        }
    if _is_object_map(tp):
        schema = {"type": "object"}
        if args:
            key, value = args
            if key is not str:
                raise UnsupportedType(f"{type_name(tp)}: JSON object keys are strings")
            if value is not Any:
                schema["additionalProperties"] = _schema(value, stack)
        return schema
    raise UnsupportedType(f"{type_name(tp)} is not supported")


@attrs.frozen
class Field:
    """One property of an object schema: a tool parameter or an attrs field.

    ``default`` is ``attrs.NOTHING`` for a required property.
    """

    name: str
    annotation: Any
    default: Any = attrs.NOTHING
    positional_only: bool = False

    @property
    def required(self) -> bool:
        return self.default is attrs.NOTHING


def object_schema(
    fields: Sequence[Field],
    descriptions: Mapping[str, str],
    stack: tuple[type, ...] = (),
) -> JsonSchema:
    """``{"type": "object", "properties": ..., "required": ..., "additionalProperties": false}``.

    Raises :class:`UnsupportedType` naming the property at fault.
    """
    properties: JsonSchema = {}
    for field in fields:
        try:
            schema = dict(_schema(field.annotation, stack))
        except UnsupportedType as exc:
            raise UnsupportedType(f"{field.name!r}: {exc}") from None
        if field.name in descriptions:
            schema["description"] = descriptions[field.name]
        if not field.required and not isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
            shown, value = json_default(field.default)
            if shown:
                schema["default"] = value
        properties[field.name] = schema
    return {
        "type": "object",
        "properties": properties,
        "required": [f.name for f in fields if f.required],
        "additionalProperties": False,
    }


def _attrs_schema(cls: type, stack: tuple[type, ...]) -> JsonSchema:
    if cls in stack:
        raise UnsupportedType(f"recursive attrs class {type_name(cls)} is not supported")
    try:
        attrs.resolve_types(cls)
    except NameError as exc:
        raise UnsupportedType(
            f"cannot resolve the annotations of {type_name(cls)}: {exc}"
        ) from None
    fields = []
    for a in attrs.fields(cls):
        if not a.init:
            continue
        if a.type is None:
            raise UnsupportedType(f"{type_name(cls)}.{a.name} has no type annotation")
        fields.append(Field(a.name, a.type, a.default))
    doc = parse_docstring(cls.__dict__.get("__doc__"))
    inner = object_schema(fields, doc.params, (*stack, cls))
    if doc.description:
        return {"type": "object", "description": doc.description, **inner}
    return inner


# --------------------------------------------------------------------------- validation


def _show(value: Any) -> str:
    """A JSON rendering of a value sent by the model, cut short for messages."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _expected(kind: str, value: Any) -> _Invalid:
    return _Invalid(f"expected {kind}, got {_show(value)}")


def _structure_enum(value: Any, tp: type[enum.Enum]) -> enum.Enum:
    for member in tp:
        if type(member.value) is type(value) and member.value == value:
            return member
    choices = ", ".join(_show(m.value) for m in tp)
    raise _Invalid(f"expected one of {choices}, got {_show(value)}")


def _strict(check: Callable[..., Any], value: Any, **options: bool) -> Any:
    """``check(value)`` (one of :mod:`kernl_trio._json`'s), its error shown with the value."""
    try:
        return check(value, **options)
    except JsonTypeError as error:
        raise _expected(error.expected, value) from None


def _structure_str(value: Any, tp: type[str]) -> str:
    if issubclass(tp, enum.Enum):
        return _structure_enum(value, tp)  # type: ignore[return-value]
    text: str = _strict(check_str, value)
    return text if tp is str else tp(text)


def _structure_int(value: Any, tp: type[int]) -> int:
    if issubclass(tp, enum.Enum):
        return _structure_enum(value, tp)  # type: ignore[return-value]
    # a model may write any number as a float: 3.0 is the integer 3, 3.5 is not
    number: int = _strict(check_int, value, integral_floats=True)
    return number if tp is int else tp(number)


def _structure_float(value: Any, tp: type[float]) -> float:
    if issubclass(tp, enum.Enum):
        return _structure_enum(value, tp)  # type: ignore[return-value]
    number: float = _strict(check_number, value)
    return number if tp is float else tp(number)


def _structure_bool(value: Any, tp: type[bool]) -> bool:
    flag: bool = _strict(check_bool, value)
    return flag


def _is_literal(tp: Any) -> bool:
    origin: Any = typing.get_origin(tp)
    return origin is Literal


def _literal_factory(tp: Any) -> StructureHook:
    choices = [(_json_value(arg), arg) for arg in typing.get_args(tp)]
    shown = ", ".join(_show(j) for j, _ in choices)

    def structure_literal(value: Any, _: Any) -> Any:
        for json_value, python_value in choices:
            if type(json_value) is type(value) and json_value == value:
                return python_value
        raise _Invalid(f"expected one of {shown}, got {_show(value)}")

    return structure_literal


def _checked(check: Callable[..., Any], inner: StructureHook) -> StructureHook:
    def structure_checked(value: Any, tp: Any) -> Any:
        return inner(_strict(check, value), tp)

    return structure_checked


def _array_factory(tp: Any, converter: cattrs.BaseConverter) -> StructureHook:
    origin = typing.get_origin(tp) or tp
    if origin in (list, collections.abc.MutableSequence):
        return _checked(check_array, list_structure_factory(tp, converter))
    return _checked(check_array, homogenous_tuple_structure_factory(tp, converter))


def _fixed_tuple_factory(tp: Any, converter: cattrs.Converter) -> StructureHook:
    size = len(typing.get_args(tp))
    inner = converter.gen_structure_hetero_tuple(tp)

    def structure_fixed_tuple(value: Any, _: Any) -> Any:
        if not isinstance(value, list) or len(value) != size:
            raise _expected(f"an array of {size} items", value)
        return inner(value, tp)

    return structure_fixed_tuple


def _mapping_factory(tp: Any, converter: cattrs.BaseConverter) -> StructureHook:
    return _checked(check_object, mapping_structure_factory(tp, converter))


def _attrs_factory(tp: Any, converter: cattrs.Converter) -> StructureHook:
    return _checked(check_object, converter.gen_structure_attrs_fromdict(tp))


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    # By class (singledispatch, which cattrs consults first): subclasses such as StrEnum or
    # IntEnum reach these hooks too, hence the enum checks inside them.
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook(enum.Enum, _structure_enum)
    # By predicate: the most recently registered wins over cattrs' lenient defaults.
    converter.register_structure_hook_factory(_is_literal, _literal_factory)
    converter.register_structure_hook_factory(_is_array, _array_factory)
    converter.register_structure_hook_factory(_is_fixed_tuple, _fixed_tuple_factory)
    converter.register_structure_hook_factory(_is_object_map, _mapping_factory)
    converter.register_structure_hook_factory(
        lambda tp: isinstance(tp, type) and attrs.has(tp), _attrs_factory
    )
    return converter


CONVERTER = _make_converter()
"""The converter of tool arguments (structure) and tool results (unstructure)."""


def _format_error(exc: BaseException, tp: Any) -> str:
    if isinstance(exc, _Invalid):
        return str(exc)
    if isinstance(exc, KeyError):
        return "required property missing"
    if isinstance(exc, ForbiddenExtraKeysError):
        names = ", ".join(sorted(exc.extra_fields))
        return f"unknown propert{'y' if len(exc.extra_fields) == 1 else 'ies'}: {names}"
    if isinstance(exc, ValueError):
        return f"invalid value ({exc})"
    return _cattrs_format_exception(exc, tp)


def error_messages(exc: cattrs.BaseValidationError) -> list[str]:
    """Readable ``"<problem> @ $.path"`` lines for one validation error group."""
    return cattrs.transform_error(exc, format_exception=_format_error)


@attrs.frozen(eq=False)
class Arguments:
    """One tool's parameters: their schema, and a cached hook that checks JSON arguments.

    Build with :meth:`from_fields`.
    """

    fields: tuple[Field, ...]
    schema: JsonSchema
    _holder: type
    _hook: StructureHook

    @classmethod
    def from_fields(cls, fields: Sequence[Field], descriptions: Mapping[str, str]) -> Arguments:
        """Raises :class:`UnsupportedType` when a parameter cannot be expressed."""
        schema = object_schema(fields, descriptions)
        for field in fields:
            if field.name == "self":
                raise UnsupportedType("a parameter named 'self' outside a class is not supported")
        holder = attrs.make_class(
            "Arguments",
            {
                f.name: attrs.field(
                    type=f.annotation, default=f.default, kw_only=True, alias=f.name
                )
                for f in fields
            },
            frozen=True,
            slots=True,
        )
        hook = CONVERTER.get_structure_hook(holder, cache_result=False)
        return cls(tuple(fields), schema, holder, hook)

    def bind(self, payload: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Check a decoded JSON object and split it into positional and keyword arguments.

        Raises :class:`cattrs.BaseValidationError` (an ExceptionGroup): see
        :func:`error_messages`. Missing optional parameters get their defaults.
        """
        values = self._hook(payload, self._holder)
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for field in self.fields:
            value = getattr(values, field.name)
            if field.positional_only:
                args.append(value)
            else:
                kwargs[field.name] = value
        return args, kwargs


# --------------------------------------------------------------------------- results


def _orjson_default(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__qualname__} is not JSON serialisable")


def dumps(value: Any) -> str:
    """A tool result as JSON text (attrs instances via cattrs). Raises TypeError."""
    plain = CONVERTER.unstructure(value)
    try:
        return orjson.dumps(plain, default=_orjson_default, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:
        pass  # e.g. an integer past 64 bits: valid JSON that orjson refuses
    try:
        return json.dumps(
            plain,
            default=_orjson_default,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
    except ValueError as exc:  # a cycle, or NaN next to the wide integer
        raise TypeError(str(exc)) from None
