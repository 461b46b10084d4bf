"""The embedded server's rule script: moved to :mod:`kernl_trio.local.rules`.

This module re-exports its names so existing imports keep working.
"""

from ..local.rules import (
    Rule,
    RuleScript,
    Voice,
    synthesize_speech,
    wire_format,
)

__all__ = [
    "Rule",
    "RuleScript",
    "Voice",
    "synthesize_speech",
    "wire_format",
]
