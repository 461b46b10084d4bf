"""Function tools: the ``@tool`` decorator, :class:`Tool` and :class:`Toolkit`.

A tool is a Python function the model may call. ``@tool`` reads its name, its description
(the docstring's prose) and the JSON Schema of its parameters (annotations, defaults, and a
Google-style ``Args:`` section) once, at definition time; unsupported annotations fail there,
with :class:`ToolDefinitionError`, not in the middle of a call.

The session calls :meth:`Tool.invoke` with the model's JSON arguments. Arguments are checked
strictly against the annotations (:class:`ToolArgumentsError`), async functions run in the
caller's task (so the turn's cancel scope reaches them), sync functions in a worker thread.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

import attrs
import cattrs
import trio

from . import _schema
from .context import Context
from .errors import ConfigurationError, KernlTrioError
from .protocol.config import FunctionTool

__all__ = [
    "Tool",
    "ToolArgumentsError",
    "ToolDefinitionError",
    "ToolError",
    "ToolResultError",
    "Toolkit",
    "tool",
]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ToolError(KernlTrioError):
    """Base of the errors about function tools."""


class ToolDefinitionError(ToolError, ConfigurationError):
    """A function cannot become a tool: unsupported annotation, bad name, ``*args``..."""


class ToolArgumentsError(ToolError):
    """The model's arguments for a call are not valid JSON or do not fit the signature.

    ``errors`` lists each problem as ``"<problem> @ $.<path>"``; the message joins them, so it
    can be sent back to the model as the call's error output.
    """

    def __init__(self, message: str, *, tool_name: str, errors: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.tool_name = tool_name
        self.errors = tuple(errors)


class ToolResultError(ToolError):
    """A tool returned a value that cannot be serialised to JSON."""


def _is_context(annotation: Any) -> bool:
    return annotation is Context or typing.get_origin(annotation) is Context


def _defined_in_class(function: Callable[..., Any]) -> bool:
    """Whether a plain function was written in a class body (``Class.method`` qualname)."""
    if not inspect.isfunction(function):
        return False
    parts = function.__qualname__.split(".")
    return len(parts) >= 2 and parts[-2] != "<locals>"


@attrs.frozen(eq=False, kw_only=True)
class Tool:
    """A function the model may call. Make one with :func:`tool`, not by hand.

    Attributes:
        name: What the model calls it (letters, digits, ``_`` and ``-``, at most 64).
        description: What the model reads to decide when to call it.
        parameters: The JSON Schema (an object) of the arguments. Read-only.
        function: The decorated function, still callable directly (e.g. in tests).
        timeout: Seconds one call may take, or ``None`` for no limit. The session applies it
            (``trio.fail_after(timeout)`` around :meth:`invoke`), not :meth:`invoke` itself, so
            callers that invoke a tool directly apply their own cancel scope.
        cancel_on_interrupt: ``True`` (the default): an interruption of the turn cancels the
            call. ``False``: the call must finish even when the turn is interrupted (a
            payment, a booking); the session runs it outside the turn's cancel scope, and
            closing the session gives it a grace period (``session.CLOSE_GRACE``) before
            cancelling it.
        is_async: The function is ``async def``: awaited in the caller's task. Otherwise it
            runs in a worker thread.
        takes_context: Its first parameter is the session's :class:`~kernl_trio.Context`.
        is_method: It was defined in a class body and needs an instance: take it from the
            instance (``toolkit.lookup``), which gives a bound tool.
    """

    name: str
    description: str
    parameters: dict[str, Any] = attrs.field(repr=False)
    function: Callable[..., Any] = attrs.field(repr=False)
    timeout: float | None = None
    cancel_on_interrupt: bool = True
    is_async: bool = False
    takes_context: bool = False
    is_method: bool = False
    _arguments: _schema.Arguments = attrs.field(repr=False, alias="arguments")

    @property
    def runs_in_thread(self) -> bool:
        """A sync function: each call runs in a worker thread."""
        return not self.is_async

    @property
    def definition(self) -> FunctionTool:
        """The provider-neutral declaration sent in the session config."""
        return FunctionTool(self.name, self.description, self.parameters)

    def __get__(self, instance: object, owner: type | None = None) -> Tool:
        """A tool defined in a class body, read from an instance, is bound to it."""
        if instance is None or not self.is_method:
            return self
        return attrs.evolve(
            self, function=types.MethodType(self.function, instance), is_method=False
        )

    def parse_arguments(self, arguments: str) -> tuple[list[Any], dict[str, Any]]:
        """Decode and check the model's JSON arguments against the signature.

        Returns the positional and keyword arguments of the call (without the context).
        An empty string counts as ``{}``. Raises :class:`ToolArgumentsError`.
        """
        try:
            payload = _loads_exact(arguments) if arguments.strip() else {}
        except ValueError as exc:
            raise ToolArgumentsError(
                f"arguments of tool {self.name!r} are not valid JSON: {exc}",
                tool_name=self.name,
                errors=(str(exc),),
            ) from None
        if not isinstance(payload, dict):
            problem = f"expected a JSON object, got {type(payload).__name__}"
            raise ToolArgumentsError(
                f"invalid arguments for tool {self.name!r}: {problem}",
                tool_name=self.name,
                errors=(problem,),
            )
        try:
            return self._arguments.bind(payload)
        except cattrs.BaseValidationError as exc:
            errors = _schema.error_messages(exc)
            raise ToolArgumentsError(
                f"invalid arguments for tool {self.name!r}: {'; '.join(errors)}",
                tool_name=self.name,
                errors=errors,
            ) from exc

    async def invoke(self, context: Context[Any], arguments: str) -> str:
        """Run one call with the model's JSON ``arguments`` and return its output text.

        Raises :class:`ToolArgumentsError` for bad arguments and :class:`ToolResultError`
        for a result that is not serialisable; whatever the function raises propagates
        unchanged. A ``str`` result is returned as is; anything else as JSON (attrs
        instances unstructured by cattrs; ``None`` becomes ``"null"``).

        No timeout is applied here (see :attr:`timeout`). An async function runs in the
        caller's task, so cancelling the caller's scope cancels it (its ``finally`` blocks
        run). A sync function runs in a worker thread, which cannot be killed: a cancellation
        abandons the thread (it runs on, its result is discarded; the session counts it in
        ``statistics().abandoned_threads``).
        """
        if self.is_method:
            raise ToolDefinitionError(
                f"tool {self.name!r} is a method: take it from an instance to bind it"
            )
        args, kwargs = self.parse_arguments(arguments)
        if self.takes_context:
            args.insert(0, context)
        if self.is_async:
            result = await self.function(*args, **kwargs)
        else:
            # A thread cannot be killed: a cancellation (an interruption, a timeout, the
            # session closing) abandons it, and it runs on with its result discarded.
            result = await trio.to_thread.run_sync(
                functools.partial(self.function, *args, **kwargs), abandon_on_cancel=True
            )
        return self.serialise(result)

    def serialise(self, result: Any) -> str:
        """A return value as output text. Raises :class:`ToolResultError`."""
        if isinstance(result, str):
            return result
        try:
            return _schema.dumps(result)
        except TypeError as exc:
            raise ToolResultError(
                f"tool {self.name!r} returned a value that is not JSON serialisable: {exc}"
            ) from exc


def _make_tool(
    function: Callable[..., Any],
    *,
    name: str | None,
    description: str | None,
    timeout: float | None,
    cancel_on_interrupt: bool,
) -> Tool:
    if isinstance(function, classmethod):
        raise ToolDefinitionError("@tool does not support classmethods")
    if isinstance(function, staticmethod):
        function = function.__func__
        is_method = False
    else:
        is_method = _defined_in_class(function)
    if not (inspect.isfunction(function) or inspect.ismethod(function)):
        raise ToolDefinitionError(f"@tool needs a function, got {function!r}")
    tool_name = function.__name__ if name is None else name
    if not _NAME.match(tool_name):
        raise ToolDefinitionError(
            f"tool name {tool_name!r} must be 1 to 64 letters, digits, '_' or '-'"
        )
    if timeout is not None and not timeout > 0:
        raise ToolDefinitionError(f"tool {tool_name!r}: timeout must be positive, got {timeout}")

    def fail(problem: str) -> ToolDefinitionError:
        return ToolDefinitionError(f"tool {tool_name!r} ({function.__qualname__}): {problem}")

    try:
        hints = typing.get_type_hints(function)
    except NameError as exc:
        raise fail(f"cannot resolve its annotations: {exc}") from None
    parameters = list(inspect.signature(function).parameters.values())
    if is_method:
        if not parameters or parameters[0].kind not in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            raise fail("a method needs a first parameter for the instance")
        parameters = parameters[1:]
    takes_context = bool(parameters) and _is_context(hints.get(parameters[0].name))
    if takes_context:
        parameters = parameters[1:]

    fields: list[_schema.Field] = []
    for parameter in parameters:
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise fail(f"*args and **kwargs are not supported ({parameter})")
        if parameter.name not in hints:
            raise fail(f"parameter {parameter.name!r} needs a type annotation")
        annotation = hints[parameter.name]
        if _is_context(annotation):
            raise fail(f"the Context parameter {parameter.name!r} must come first")
        fields.append(
            _schema.Field(
                parameter.name,
                annotation,
                attrs.NOTHING
                if parameter.default is inspect.Parameter.empty
                else parameter.default,
                positional_only=parameter.kind is inspect.Parameter.POSITIONAL_ONLY,
            )
        )

    doc = _schema.parse_docstring(inspect.getdoc(function))
    try:
        arguments = _schema.Arguments.from_fields(fields, doc.params)
    except _schema.UnsupportedType as exc:
        raise fail(f"parameter {exc}") from None
    return Tool(
        name=tool_name,
        description=doc.description if description is None else description,
        parameters=arguments.schema,
        function=function,
        timeout=timeout,
        cancel_on_interrupt=cancel_on_interrupt,
        is_async=inspect.iscoroutinefunction(function),
        takes_context=takes_context,
        is_method=is_method,
        arguments=arguments,
    )


@overload
def tool(function: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    cancel_on_interrupt: bool = True,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    cancel_on_interrupt: bool = True,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a function into a :class:`Tool`; use as ``@tool`` or ``@tool(...)``.

    Args:
        function: The function (sync or ``async def``). Its first parameter may be the
            session's context, annotated ``Context`` or ``Context[YourData]``; every other
            parameter needs a supported annotation (see :mod:`kernl_trio._schema`).
        name: Defaults to the function's name.
        description: Defaults to the docstring's prose (the text before ``Args:``).
        timeout: Seconds a call may take; ``None`` for no limit (see :attr:`Tool.timeout`).
        cancel_on_interrupt: ``False`` for calls that must complete even when the turn is
            interrupted (see :attr:`Tool.cancel_on_interrupt`).

    Functions written in a class body become method tools: the instance parameter is left
    out of the schema, and reading the attribute from an instance binds it (see
    :class:`Toolkit`). Raises :class:`ToolDefinitionError`.
    """

    def decorate(function: Callable[..., Any]) -> Tool:
        return _make_tool(
            function,
            name=name,
            description=description,
            timeout=timeout,
            cancel_on_interrupt=cancel_on_interrupt,
        )

    if function is None:
        return decorate
    return decorate(function)


class Toolkit:
    """A named group of tools, given to an agent with ``toolkits=[...]``.

    Either list the tools::

        calendar = Toolkit("calendar", [find_slot, book_slot])

    or subclass and decorate methods with ``@tool``; each instance then holds them bound to
    itself (and any other tool written in the class body, such as a ``@tool @staticmethod``),
    after the tools passed to the constructor, in definition order::

        class Crm(Toolkit):
            def __init__(self, client: CrmClient) -> None:
                super().__init__("crm")
                self.client = client

            @tool
            async def find_customer(self, phone: str) -> Customer: ...

    ``name`` defaults to a ``name`` class attribute, else to the class's name. The tools are
    fixed when the toolkit is constructed.
    """

    name: str

    def __init__(self, name: str | None = None, tools: Sequence[Tool] = ()) -> None:
        if name is None:
            name = getattr(type(self), "name", None) or type(self).__name__
        self.name = name
        self._tools = (*tools, *self._class_tools())

    def _class_tools(self) -> list[Tool]:
        names: dict[str, None] = {}
        for klass in reversed(type(self).__mro__):
            for attribute, value in vars(klass).items():
                if isinstance(value, Tool):
                    names[attribute] = None
        bound = (getattr(self, attribute) for attribute in names)
        return [value for value in bound if isinstance(value, Tool)]

    @property
    def tools(self) -> tuple[Tool, ...]:
        return self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools)

    def __len__(self) -> int:
        return len(self._tools)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, tools={[t.name for t in self._tools]!r})"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _loads_exact(text: str) -> Any:
    """JSON with integers of any size kept exact (orjson turns those past 64 bits into
    floats, silently rounding them); NaN and Infinity are refused."""
    return json.loads(text, parse_constant=_reject_constant)
