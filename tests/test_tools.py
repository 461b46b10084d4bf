"""@tool, Tool and Toolkit: schemas, argument checking, invocation, cancellation."""

import enum
import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Optional

import attrs
import pytest
import trio

from kernl_trio.context import Context
from kernl_trio.errors import ConfigurationError, KernlTrioError
from kernl_trio.protocol.config import FunctionTool
from kernl_trio.tools import (
    Tool,
    ToolArgumentsError,
    ToolDefinitionError,
    ToolError,
    Toolkit,
    ToolResultError,
    tool,
)


class Unit(enum.StrEnum):
    CELSIUS = "c"
    FAHRENHEIT = "f"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Mood(enum.Enum):
    CALM = "calm"
    BUSY = 3


@attrs.frozen
class Address:
    """A postal address.

    Attributes:
        street: Street and number.
        city: City name.
    """

    street: str
    city: str
    zip: str | None = None


@attrs.frozen
class Order:
    id: str
    items: list[str] = attrs.field(factory=list)
    ship_to: Address | None = None


@attrs.frozen
class Forecast:
    city: str
    temperature: float
    unit: Unit


@attrs.frozen
class Node:
    value: int
    children: "list[Node]"


def obj(properties: dict[str, Any], required: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


# --------------------------------------------------------------------------- definition


def test_bare_decorator_reads_name_docstring_and_signature() -> None:
    @tool
    async def get_weather(city: str, days: int = 1) -> str:
        """Get the weather forecast for a city.

        Args:
            city: The city, e.g. "Paris".
            days: How many days
                ahead, 1 to 7.

        Returns:
            A short forecast.
        """
        return ""

    assert isinstance(get_weather, Tool)
    assert get_weather.name == "get_weather"
    assert get_weather.description == "Get the weather forecast for a city."
    assert get_weather.parameters == obj(
        {
            "city": {"type": "string", "description": 'The city, e.g. "Paris".'},
            "days": {
                "type": "integer",
                "description": "How many days ahead, 1 to 7.",
                "default": 1,
            },
        },
        required=["city"],
    )
    assert get_weather.timeout is None
    assert get_weather.cancel_on_interrupt is True
    assert get_weather.is_async is True
    assert get_weather.takes_context is False
    assert get_weather.is_method is False


def test_decorator_options_override_and_definition() -> None:
    @tool(
        name="pay-invoice", description="Pay one invoice.", timeout=5.0, cancel_on_interrupt=False
    )
    def pay(invoice_id: str) -> None:
        """Ignored because description is given."""

    assert pay.name == "pay-invoice"
    assert pay.description == "Pay one invoice."
    assert pay.timeout == 5.0
    assert pay.cancel_on_interrupt is False
    assert pay.is_async is False
    assert pay.definition == FunctionTool(
        "pay-invoice",
        "Pay one invoice.",
        obj({"invoice_id": {"type": "string"}}, required=["invoice_id"]),
    )


def test_decorator_with_empty_parentheses() -> None:
    @tool()
    def ping() -> str:
        return "pong"

    assert ping.name == "ping"
    assert ping.description == ""
    assert ping.parameters == obj({})


def test_description_keeps_all_prose_before_the_sections() -> None:
    @tool
    def lookup(code: str) -> str:
        """Look up an airport.

        Use it for IATA codes only. The answer lists
        the name and the city:

        Args:
            code (str): Three letters.
        Raises:
            KeyError: unknown code.
        """
        return code

    assert lookup.description == (
        "Look up an airport.\n\n"
        "Use it for IATA codes only. The answer lists\nthe name and the city:"
    )
    assert lookup.parameters["properties"]["code"] == {
        "type": "string",
        "description": "Three letters.",
    }


def test_only_known_section_headers_end_the_description() -> None:
    @tool
    def f(a: int, b: int) -> None:
        """Add two numbers.

        Result format:
            a plain integer.

        Arguments:
            a: First.
            b: Second,
               continued.
            c: Not a parameter; ignored.
        Example:
            a: not an argument description.
        """

    assert f.description == "Add two numbers.\n\nResult format:\n    a plain integer."
    assert f.parameters["properties"] == {
        "a": {"type": "integer", "description": "First."},
        "b": {"type": "integer", "description": "Second, continued."},
    }


def test_scalar_and_optional_annotations() -> None:
    @tool
    def f(
        s: str,
        i: int,
        x: float,
        b: bool,
        maybe: str | None,
        old_style: Optional[int] = None,  # noqa: UP045
        anything: Any = None,
    ) -> None:
        pass

    assert f.parameters == obj(
        {
            "s": {"type": "string"},
            "i": {"type": "integer"},
            "x": {"type": "number"},
            "b": {"type": "boolean"},
            "maybe": nullable({"type": "string"}),
            "old_style": {**nullable({"type": "integer"}), "default": None},
            "anything": {"default": None},
        },
        required=["s", "i", "x", "b", "maybe"],
    )


def test_literal_and_enum_annotations() -> None:
    @tool
    def f(
        mode: Literal["fast", "slow"],
        level: Literal[1, 2, 3],
        mixed: Literal["auto", 0],
        unit: Unit = Unit.CELSIUS,
        priority: Priority = Priority.LOW,
        mood: Mood | None = None,
    ) -> None:
        pass

    assert f.parameters == obj(
        {
            "mode": {"type": "string", "enum": ["fast", "slow"]},
            "level": {"type": "integer", "enum": [1, 2, 3]},
            "mixed": {"enum": ["auto", 0]},
            "unit": {"type": "string", "enum": ["c", "f"], "default": "c"},
            "priority": {"type": "integer", "enum": [1, 2], "default": 1},
            "mood": {**nullable({"enum": ["calm", 3]}), "default": None},
        },
        required=["mode", "level", "mixed"],
    )


def test_collection_annotations() -> None:
    @tool
    def f(
        names: list[str],
        scores: Sequence[float],
        ids: tuple[int, ...],
        point: tuple[float, float],
        labels: dict[str, int],
        meta: Mapping[str, Any],
        raw: list,  # type: ignore[type-arg]
    ) -> None:
        pass

    assert f.parameters == obj(
        {
            "names": {"type": "array", "items": {"type": "string"}},
            "scores": {"type": "array", "items": {"type": "number"}},
            "ids": {"type": "array", "items": {"type": "integer"}},
            "point": {
                "type": "array",
                "prefixItems": [{"type": "number"}, {"type": "number"}],
                "minItems": 2,
                "maxItems": 2,
            },
            "labels": {"type": "object", "additionalProperties": {"type": "integer"}},
            "meta": {"type": "object"},
            "raw": {"type": "array"},
        },
        required=["names", "scores", "ids", "point", "labels", "meta", "raw"],
    )


def test_attrs_classes_become_nested_objects() -> None:
    @tool
    def place(order: Order, bill_to: Address | None = None) -> None:
        """Place an order.

        Args:
            order: What to ship.
        """

    address = {
        "type": "object",
        "description": "A postal address.",
        **obj(
            {
                "street": {"type": "string", "description": "Street and number."},
                "city": {"type": "string", "description": "City name."},
                "zip": {**nullable({"type": "string"}), "default": None},
            },
            required=["street", "city"],
        ),
    }
    assert place.parameters == obj(
        {
            "order": {
                **obj(
                    {
                        "id": {"type": "string"},
                        "items": {"type": "array", "items": {"type": "string"}},
                        "ship_to": {**nullable(address), "default": None},
                    },
                    required=["id"],
                ),
                "description": "What to ship.",
            },
            "bill_to": {**nullable(address), "default": None},
        },
        required=["order"],
    )


def test_context_first_parameter_is_left_out() -> None:
    @tool
    async def typed(ctx: Context[dict[str, int]], key: str) -> int:
        return ctx.data[key]

    @tool
    def bare(context: Context, key: str) -> str:  # type: ignore[type-arg]
        return key

    @tool
    def without(key: str) -> str:
        return key

    for t in (typed, bare):
        assert t.takes_context is True
        assert t.parameters == obj({"key": {"type": "string"}}, required=["key"])
    assert without.takes_context is False


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: tool(_unannotated), "'x' needs a type annotation"),
        (lambda: tool(_star_args), "*args and **kwargs"),
        (lambda: tool(_union), "only unions of the form `X | None`"),
        (lambda: tool(_int_keys), "JSON object keys are strings"),
        (lambda: tool(_bytes), "'data': bytes is not supported"),
        (lambda: tool(_recursive), "recursive attrs class Node"),
        (lambda: tool(_context_second), "must come first"),
        (lambda: tool(_self_outside_a_class), "named 'self' outside a class"),
        (lambda: tool(name="no spaces")(_ok), "must be 1 to 64 letters"),
        (lambda: tool(name="x" * 65)(_ok), "must be 1 to 64 letters"),
        (lambda: tool(timeout=0)(_ok), "timeout must be positive"),
        (lambda: tool(42), "@tool needs a function"),  # type: ignore[call-overload]
    ],
)
def test_definition_errors(make: Any, message: str) -> None:
    with pytest.raises(ToolDefinitionError, match=None) as info:
        make()
    assert message in str(info.value)
    assert isinstance(info.value, ToolError)
    assert isinstance(info.value, ConfigurationError)
    assert isinstance(info.value, KernlTrioError)


def _ok(x: int) -> int:
    return x


def _unannotated(x) -> None:  # type: ignore[no-untyped-def]
    pass


def _star_args(*values: int) -> None:
    pass


def _union(value: int | str) -> None:
    pass


def _int_keys(value: dict[int, str]) -> None:
    pass


def _bytes(data: bytes) -> None:
    pass


def _recursive(tree: Node) -> None:
    pass


def _context_second(x: int, ctx: Context[None]) -> None:
    pass


def _self_outside_a_class(self: int) -> None:
    pass


def test_unresolvable_string_annotation() -> None:
    def f(x: "Missing") -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    with pytest.raises(ToolDefinitionError, match="cannot resolve its annotations"):
        tool(f)


def test_classmethod_is_rejected() -> None:
    with pytest.raises(ToolDefinitionError, match="classmethods"):

        class Holder:
            @tool
            @classmethod
            def f(cls, x: int) -> None:
                pass


# --------------------------------------------------------------------------- invocation


@tool
async def make_order(order_id: str, quantity: int = 1, unit: Unit = Unit.CELSIUS) -> dict[str, Any]:
    """Make an order."""
    return {"order_id": order_id, "quantity": quantity, "unit": unit}


@tool
async def ship(order: Order, express: bool = False) -> Order:
    return order


async def test_invoke_with_valid_arguments_applies_defaults() -> None:
    output = await make_order.invoke(Context(None), '{"order_id": "A1"}')
    assert output == '{"order_id":"A1","quantity":1,"unit":"c"}'
    output = await make_order.invoke(Context(None), '{"order_id":"A1","quantity":3,"unit":"f"}')
    assert output == '{"order_id":"A1","quantity":3,"unit":"f"}'


async def test_arguments_are_converted_to_their_annotations() -> None:
    seen: list[Any] = []

    @tool
    async def f(unit: Unit, priority: Priority, ratio: float, order: Order) -> None:
        seen.extend([unit, priority, ratio, order])

    await f.invoke(
        Context(None),
        '{"unit": "f", "priority": 2, "ratio": 1, "order":'
        ' {"id": "o", "items": ["a"], "ship_to": {"street": "1 Rue", "city": "Lyon"}}}',
    )
    assert seen == [
        Unit.FAHRENHEIT,
        Priority.HIGH,
        1.0,
        Order("o", ["a"], Address("1 Rue", "Lyon")),
    ]
    assert type(seen[2]) is float


async def test_integral_float_is_accepted_for_int() -> None:
    assert await make_order.invoke(Context(None), '{"order_id": "A", "quantity": 2.0}') == (
        '{"order_id":"A","quantity":2,"unit":"c"}'
    )


async def test_empty_arguments_string_means_no_arguments() -> None:
    @tool
    def ping() -> str:
        return "pong"

    assert await ping.invoke(Context(None), "") == "pong"
    assert await ping.invoke(Context(None), "{}") == "pong"


async def test_positional_only_parameters() -> None:
    @tool
    def join(a: str, b: str, /, sep: str = "-") -> str:
        return a + sep + b

    assert await join.invoke(Context(None), '{"a": "x", "b": "y"}') == "x-y"


@pytest.mark.parametrize(
    ("arguments", "errors"),
    [
        ('{"order_id": "A1"', None),
        ("[1, 2]", ["expected a JSON object, got list"]),
        ("{}", ["required property missing @ $.order_id"]),
        ('{"order_id": 7}', ["expected a string, got 7 @ $.order_id"]),
        ('{"order_id": "A", "quantity": "2"}', ['expected an integer, got "2" @ $.quantity']),
        ('{"order_id": "A", "quantity": true}', ["expected an integer, got true @ $.quantity"]),
        ('{"order_id": "A", "quantity": 1.5}', ["expected an integer, got 1.5 @ $.quantity"]),
        ('{"order_id": "A", "unit": "k"}', ['expected one of "c", "f", got "k" @ $.unit']),
        ('{"order_id": "A", "coupon": "X"}', ["unknown property: coupon @ $"]),
        (
            '{"quantity": "x", "a": 1, "b": 2}',
            [
                'expected an integer, got "x" @ $.quantity',
                "required property missing @ $.order_id",
                "unknown properties: a, b @ $",
            ],
        ),
    ],
)
async def test_invalid_arguments(arguments: str, errors: list[str] | None) -> None:
    with pytest.raises(ToolArgumentsError) as info:
        await make_order.invoke(Context(None), arguments)
    exc = info.value
    assert exc.tool_name == "make_order"
    assert isinstance(exc, ToolError)
    if errors is None:
        assert str(exc).startswith("arguments of tool 'make_order' are not valid JSON: ")
    else:
        assert sorted(exc.errors) == sorted(errors)
        assert str(exc) == f"invalid arguments for tool 'make_order': {'; '.join(exc.errors)}"


async def test_invalid_nested_arguments_name_their_path() -> None:
    arguments = (
        '{"order": {"id": "o", "items": "abc", "ship_to": {"street": 5, "town": "x"}},'
        ' "express": "yes"}'
    )
    with pytest.raises(ToolArgumentsError) as info:
        await ship.invoke(Context(None), arguments)
    assert sorted(info.value.errors) == sorted(
        [
            'expected a boolean, got "yes" @ $.express',
            'expected an array, got "abc" @ $.order.items',
            "expected a string, got 5 @ $.order.ship_to.street",
            "required property missing @ $.order.ship_to.city",
            "unknown property: town @ $.order.ship_to",
        ]
    )
    # An ExceptionGroup never leaves invoke: one ToolArgumentsError does.
    assert not isinstance(info.value, BaseExceptionGroup)


async def test_invalid_collections_are_rejected() -> None:
    @tool
    def f(
        names: list[str] | None = None,
        point: tuple[int, int] | None = None,
        labels: dict[str, int] | None = None,
        level: Literal[1, 2] | None = None,
    ) -> None:
        pass

    with pytest.raises(ToolArgumentsError) as info:
        await f.invoke(
            Context(None),
            '{"names": ["a", 1], "point": [1], "labels": {"x": "1"}, "level": true}',
        )
    assert sorted(info.value.errors) == sorted(
        [
            "expected an integer, got \"1\" @ $.labels['x']",
            "expected an array of 2 items, got [1] @ $.point",
            "expected a string, got 1 @ $.names[1]",
            "expected one of 1, 2, got true @ $.level",
        ]
    )


async def test_context_is_passed_to_tools_that_take_it() -> None:
    @tool
    async def count(ctx: Context[dict[str, int]], key: str) -> int:
        ctx.data[key] = ctx.data.get(key, 0) + 1
        return ctx.data[key]

    context = Context({"a": 1})
    assert await count.invoke(context, '{"key": "a"}') == "2"
    assert context.data == {"a": 2}


async def test_sync_tool_runs_in_a_worker_thread() -> None:
    threads: list[int] = []

    @tool
    def where(ctx: Context[None]) -> str:
        threads.append(threading.get_ident())
        return "done"

    assert await where.invoke(Context(None), "{}") == "done"
    assert threads and threads[0] != threading.get_ident()


async def test_async_tool_runs_in_the_callers_task() -> None:
    tasks: list[trio.lowlevel.Task] = []

    @tool
    async def where() -> None:
        tasks.append(trio.lowlevel.current_task())

    await where.invoke(Context(None), "{}")
    assert tasks == [trio.lowlevel.current_task()]


@pytest.mark.parametrize("is_async", [True, False])
async def test_exceptions_from_the_tool_propagate_unchanged(is_async: bool) -> None:
    problem = ValueError("no such city")

    async def failing_async(city: str) -> str:
        raise problem

    def failing_sync(city: str) -> str:
        raise problem

    failing = tool(failing_async if is_async else failing_sync)
    with pytest.raises(ValueError) as info:
        await failing.invoke(Context(None), '{"city": "X"}')
    assert info.value is problem


@pytest.mark.parametrize(
    ("result", "output"),
    [
        ("plain text", "plain text"),
        ("", ""),
        (None, "null"),
        ({"a": 1, "b": [True, None]}, '{"a":1,"b":[true,null]}'),
        ({1: "x"}, '{"1":"x"}'),
        (3.5, "3.5"),
        (Forecast("Paris", 21.5, Unit.CELSIUS), '{"city":"Paris","temperature":21.5,"unit":"c"}'),
        (
            [Address("1 Rue", "Lyon")],
            '[{"street":"1 Rue","city":"Lyon","zip":null}]',
        ),
        ({"where": Address("a", "b", "c")}, '{"where":{"street":"a","city":"b","zip":"c"}}'),
        (Priority.HIGH, "2"),
        (frozenset({7}), "[7]"),
    ],
)
async def test_result_serialisation(result: Any, output: str) -> None:
    @tool
    async def give() -> Any:
        return result

    assert await give.invoke(Context(None), "{}") == output


async def test_unserialisable_result() -> None:
    @tool
    def give() -> object:
        return object()

    with pytest.raises(ToolResultError, match="'give' returned a value that is not JSON"):
        await give.invoke(Context(None), "{}")


# --------------------------------------------------------------------------- cancellation


async def test_cancelled_async_tool_runs_its_finally(autojump_clock: trio.abc.Clock) -> None:
    events: list[tuple[str, float]] = []

    @tool
    async def slow(seconds: float) -> str:
        events.append(("start", trio.current_time()))
        try:
            await trio.sleep(seconds)
            return "finished"
        finally:
            events.append(("finally", trio.current_time()))

    with trio.move_on_after(1.5) as scope:
        await slow.invoke(Context(None), '{"seconds": 10}')
    assert scope.cancelled_caught
    assert events == [("start", 0.0), ("finally", 1.5)]
    assert trio.current_time() == 1.5


async def test_cancellation_reaches_the_tool_from_an_outer_scope(
    autojump_clock: trio.abc.Clock,
) -> None:
    cancelled_at: list[float] = []

    @tool
    async def wait_forever() -> None:
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled_at.append(trio.current_time())
            raise

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait_forever.invoke, Context(None), "{}")
        await trio.sleep(2.25)
        nursery.cancel_scope.cancel()
    assert cancelled_at == [2.25]


async def test_cancelled_sync_tool_is_abandoned(autojump_clock: trio.abc.Clock) -> None:
    release = threading.Event()
    finished = threading.Event()

    @tool
    def blocking() -> str:
        try:
            release.wait(timeout=10)
            return "late"
        finally:
            finished.set()

    with trio.move_on_after(1) as scope:
        await blocking.invoke(Context(None), "{}")
    assert scope.cancelled_caught
    assert trio.current_time() == 1.0
    assert not finished.is_set()  # the thread still runs; the caller did not wait for it
    release.set()
    await trio.to_thread.run_sync(finished.wait)


async def test_a_cancelled_sync_tool_abandons_its_thread(
    autojump_clock: trio.abc.Clock,
) -> None:
    # A thread cannot be killed, whatever the tool's cancel_on_interrupt says: a
    # cancellation returns at once and the thread runs on with its result discarded.
    release = threading.Event()
    finished = threading.Event()

    @tool(cancel_on_interrupt=False)
    def pay(amount: int) -> str:
        release.wait(timeout=10)
        finished.set()
        return f"paid {amount}"

    with trio.move_on_after(1) as scope:
        await pay.invoke(Context(None), '{"amount": 5}')
    assert scope.cancelled_caught
    assert trio.current_time() == 1.0
    assert not finished.is_set()
    release.set()
    await trio.to_thread.run_sync(finished.wait, 10)
    assert pay.runs_in_thread


# --------------------------------------------------------------------------- toolkits


async def test_toolkit_from_a_list_of_tools() -> None:
    kit = Toolkit("orders", [make_order, ship])
    assert kit.name == "orders"
    assert list(kit) == [make_order, ship]
    assert kit.tools == (make_order, ship)
    assert len(kit) == 2
    assert repr(kit) == "Toolkit('orders', tools=['make_order', 'ship'])"


class Crm(Toolkit):
    name = "crm"

    def __init__(self, customers: dict[str, str]) -> None:
        super().__init__(tools=[make_order])
        self.customers = customers

    @tool
    async def find_customer(self, ctx: Context[list[str]], phone: str) -> str:
        """Find a customer by phone number.

        Args:
            phone: In E.164 form.
        """
        ctx.data.append(phone)
        return self.customers[phone]

    @tool(timeout=2.0)
    def count_customers(self) -> int:
        return len(self.customers)

    @tool
    @staticmethod
    def normalise(phone: str) -> str:
        return phone.replace(" ", "")

    def helper(self) -> None:
        """Not a tool."""


class BiggerCrm(Crm):
    @tool(name="count_customers")
    def count_customers(self) -> int:
        return 1000 + len(self.customers)


async def test_toolkit_subclass_binds_method_tools() -> None:
    crm = Crm({"+331": "Ada"})
    assert crm.name == "crm"
    assert [t.name for t in crm] == [
        "make_order",
        "find_customer",
        "count_customers",
        "normalise",
    ]
    find = crm.find_customer
    assert find.is_method is False
    assert find.takes_context is True
    assert find.description == "Find a customer by phone number."
    assert find.parameters == obj(
        {"phone": {"type": "string", "description": "In E.164 form."}}, required=["phone"]
    )
    context: Context[list[str]] = Context([])
    assert await find.invoke(context, '{"phone": "+331"}') == "Ada"
    assert context.data == ["+331"]
    counted = crm.tools[2]
    assert counted.timeout == 2.0
    assert counted.is_async is False
    assert await counted.invoke(Context(None), "{}") == "1"
    assert await crm.tools[3].invoke(Context(None), '{"phone": "+33 1"}') == "+331"


async def test_toolkit_subclass_overrides_keep_their_place() -> None:
    crm = BiggerCrm({"+331": "Ada"})
    assert [t.name for t in crm] == ["make_order", "find_customer", "count_customers", "normalise"]
    assert await crm.tools[2].invoke(Context(None), "{}") == "1001"


def test_toolkit_name_defaults_to_the_class_name() -> None:
    class Calendar(Toolkit):
        pass

    assert Calendar().name == "Calendar"
    assert Calendar("cal").name == "cal"
    assert Toolkit().name == "Toolkit"


async def test_method_tool_read_from_the_class_is_unbound() -> None:
    unbound = Crm.find_customer
    assert unbound.is_method is True
    assert unbound.parameters["properties"] == {
        "phone": {"type": "string", "description": "In E.164 form."}
    }
    with pytest.raises(ToolDefinitionError, match="is a method"):
        await unbound.invoke(Context([]), '{"phone": "+331"}')


async def test_tool_from_a_bound_method() -> None:
    class Greeter:
        def __init__(self, greeting: str) -> None:
            self.greeting = greeting

        async def greet(self, name: str) -> str:
            return f"{self.greeting}, {name}"

    greet = tool(Greeter("Hello").greet)
    assert greet.is_method is False
    assert greet.parameters == obj({"name": {"type": "string"}}, required=["name"])
    assert await greet.invoke(Context(None), '{"name": "Ada"}') == "Hello, Ada"


def test_tool_function_stays_callable() -> None:
    assert _ok_tool.function(2) == 4


@tool
def _ok_tool(x: int) -> int:
    return x * 2


async def test_integer_arguments_past_64_bits_stay_exact() -> None:
    @tool
    def echo(n: int) -> str:
        """Echoes n."""
        return str(n)

    huge = 123456789012345678901234567890
    assert await echo.invoke(Context(None), f'{{"n": {huge}}}') == str(huge)
    assert await echo.invoke(Context(None), '{"n": 18446744073709551616}') == "18446744073709551616"
    with pytest.raises(ToolArgumentsError, match="not valid JSON"):
        await echo.invoke(Context(None), '{"n": NaN}')


async def test_integer_results_past_64_bits_are_serialised_exactly() -> None:
    # found by the reliability fuzzer: add(2**64, 1) failed with "not JSON serialisable"
    @tool
    def add(a: int, b: int) -> dict[str, int]:
        """Adds."""
        return {"sum": a + b}

    output = await add.invoke(Context(None), '{"a": 18446744073709551616, "b": -1}')
    assert output == '{"sum":18446744073709551615}'  # orjson's own range
    output = await add.invoke(Context(None), '{"a": 18446744073709551616, "b": 1}')
    assert output == '{"sum":18446744073709551617}'
    assert json.loads(output) == {"sum": 2**64 + 1}
    with pytest.raises(ToolResultError):
        add.serialise({"wide": 2**64, "nan": float("nan")})
