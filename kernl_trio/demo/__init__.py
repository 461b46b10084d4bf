"""The ``kernl-trio demo`` conversation: a weather agent, its user, and the embedded server.

* :mod:`.agent`: the weather agent and its slow ``get_weather`` tool;
* :mod:`.script`: what the user says and when, the server's rule script;
* :mod:`.run`: runs it all (``main(DemoOptions(...))``);
* :mod:`.report`: the live transcript.
"""

from .agent import get_weather, weather_agent
from .run import DemoOptions, DemoResult, main

__all__ = ["DemoOptions", "DemoResult", "get_weather", "main", "weather_agent"]
