"""The local realtime server: the OpenAI GA realtime protocol, served on your machine.

:class:`~kernl_trio.local.embedded.EmbeddedServer` listens (energy turn detection,
:mod:`~kernl_trio.local.vad`), answers from a rule script (:mod:`~kernl_trio.local.rules`) and
speaks with a synthetic voice. The demo, ``kernl-trio serve`` and ``kernl-trio twilio
--model-url`` use it; :mod:`kernl_trio.testing` builds its scripted server and fixtures on it.
No key, no network.
"""

from .embedded import EmbeddedConnection, EmbeddedServer, Transcriber
from .replies import (
    AudioReply,
    Reply,
    Responder,
    ResponseRequest,
    TextReply,
    ToolCallReply,
    default_responder,
)
from .rules import Rule, RuleScript, Voice, synthesize_speech
from .server import ScriptedServer, ServerConnection

__all__ = [
    "AudioReply",
    "EmbeddedConnection",
    "EmbeddedServer",
    "Reply",
    "Responder",
    "ResponseRequest",
    "Rule",
    "RuleScript",
    "ScriptedServer",
    "ServerConnection",
    "TextReply",
    "ToolCallReply",
    "Transcriber",
    "Voice",
    "default_responder",
    "synthesize_speech",
]
