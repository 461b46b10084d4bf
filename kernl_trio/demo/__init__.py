"""The ``kernl-trio demo`` conversation: a weather agent, its user, and the embedded server.

* :mod:`.agent`: the weather agent and its slow ``get_weather`` tool;
* :mod:`.script`: what the user says and when, the server's rule script;
* :mod:`.run`: runs it all (``main(DemoOptions(...))``);
* :mod:`.report`: the live transcript.
"""

# Names load on first use (PEP 562): `kernl-trio serve` needs the script, not the runner.
from typing import TYPE_CHECKING, Any

from .._lazy import load

if TYPE_CHECKING:
    from .agent import get_weather, weather_agent
    from .run import DemoOptions, DemoResult, main

_EXPORTS = {
    "DemoOptions": ".run",
    "DemoResult": ".run",
    "get_weather": ".agent",
    "main": ".run",
    "weather_agent": ".agent",
}


def __getattr__(name: str) -> Any:
    return load(__name__, _EXPORTS, name, globals())


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = ["DemoOptions", "DemoResult", "get_weather", "main", "weather_agent"]
