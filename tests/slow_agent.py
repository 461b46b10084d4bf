"""An agent module that takes its time to import (as one loading a model might), for the
signal-during-start-up tests: it prints ``loading`` first, then sleeps."""

from __future__ import annotations

import time

from kernl_trio.agent import RealtimeAgent

print("loading", flush=True)
time.sleep(30)

AGENT = RealtimeAgent("slow", name="Slow", instructions="Answer the phone.")
