"""The phone tests' agent, on its own: ``kernl-trio twilio --agent tests.phone_agent:AGENT``
subprocesses import this module, not a test module with pytest and the test helpers."""

from __future__ import annotations

from kernl_trio.agent import RealtimeAgent

AGENT = RealtimeAgent("phone", name="Phone", instructions="Answer the phone.")
