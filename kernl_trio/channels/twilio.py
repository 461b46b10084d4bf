"""Phone calls through Twilio Media Streams (protocols.md section D; docs/channels.md).

:func:`serve_twilio` runs a WebSocket server where each call is one session;
:class:`TwilioChannel` is one call's stream as a :class:`~kernl_trio.model.RealtimeChannel`;
:func:`handle_twilio_call` serves one accepted socket, for applications that run their own
server. ``kernl-trio twilio --agent module:attr --port N`` runs :func:`main_twilio`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from functools import partial

import trio

from ..agent import RealtimeAgent
from ..errors import ConfigurationError
from ..protocol import PCM16_24K, PCMU_8K
from ._twilio_channel import (
    TwilioChannel,
    TwilioChannelStatistics,
    TwilioDtmf,
    TwilioEvent,
    TwilioMalformed,
    TwilioMarkEcho,
    TwilioOptions,
    TwilioStopped,
)
from ._twilio_server import (
    ContextFactory,
    TwilioCall,
    TwilioCallRecord,
    TwilioServer,
    TwilioServerStatistics,
    handle_twilio_call,
    serve_twilio,
    twilio_signature,
    validate_twilio_signature,
)
from ._twilio_wire import MediaFormat, StartInfo

__all__ = [
    "ContextFactory",
    "MediaFormat",
    "StartInfo",
    "TwilioCall",
    "TwilioCallRecord",
    "TwilioChannel",
    "TwilioChannelStatistics",
    "TwilioDtmf",
    "TwilioEvent",
    "TwilioMalformed",
    "TwilioMarkEcho",
    "TwilioOptions",
    "TwilioServer",
    "TwilioServerStatistics",
    "TwilioStopped",
    "handle_twilio_call",
    "load_agent",
    "main_twilio",
    "run_twilio_command",
    "serve_twilio",
    "twilio_signature",
    "validate_twilio_signature",
]

_FORMATS = {"pcmu": PCMU_8K, "pcm16": PCM16_24K}


def load_agent(ref: str) -> RealtimeAgent:
    """The agent named by ``"package.module:attribute"`` (an agent, or a callable making one).

    The current directory is importable, as it is for ``python -m``.
    """
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ConfigurationError(f"--agent takes module:attribute, got {ref!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {module_name!r}: {exc}") from exc
    for name in attr.split("."):
        try:
            target = getattr(target, name)
        except AttributeError:
            raise ConfigurationError(f"{ref!r}: no attribute {name!r}") from None
    if not isinstance(target, RealtimeAgent) and callable(target):
        target = target()
    if not isinstance(target, RealtimeAgent):
        raise ConfigurationError(f"{ref!r} is a {type(target).__name__}, not a RealtimeAgent")
    return target


async def run_twilio_command(
    agent_ref: str,
    *,
    port: int = 8080,
    host: str = "127.0.0.1",
    public_url: str | None = None,
    auth_token: str | None = None,
    model_format: str = "pcmu",
) -> None:
    """What ``kernl-trio twilio`` does: load the agent, serve until cancelled."""
    agent = load_agent(agent_ref)
    options = TwilioOptions(model_format=_FORMATS[model_format])
    async with trio.open_nursery() as nursery:
        server: TwilioServer = await nursery.start(
            partial(
                serve_twilio,
                agent,
                host=host,
                port=port,
                auth_token=auth_token,
                public_url=public_url,
                options=options,
            )
        )
        checked = "signatures checked" if auth_token else "signatures NOT checked"
        print(
            f"kernl-trio: Twilio Media Streams for agent {agent.id!r} on "
            f"ws://{host}:{server.port} ({checked}); Ctrl+C stops",
            flush=True,
        )


def main_twilio(argv: Sequence[str] | None = None) -> int:
    """``kernl-trio twilio --agent module:attr --port N``: returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="kernl-trio twilio",
        description="Answer Twilio calls with a realtime agent (TwiML <Connect><Stream>).",
    )
    parser.add_argument("--agent", required=True, help="module:attribute of a RealtimeAgent")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--public-url",
        help="scheme and host Twilio connects to, e.g. wss://abc.ngrok.app (for signatures)",
    )
    parser.add_argument(
        "--auth-token",
        default=os.environ.get("TWILIO_AUTH_TOKEN"),
        help="Twilio auth token to check X-Twilio-Signature (default: $TWILIO_AUTH_TOKEN)",
    )
    parser.add_argument(
        "--model-format",
        choices=sorted(_FORMATS),
        default="pcmu",
        help="audio the model hears and speaks: pcmu passes the call through untouched",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    try:
        trio.run(
            partial(
                run_twilio_command,
                args.agent,
                port=args.port,
                host=args.host,
                public_url=args.public_url,
                auth_token=args.auth_token,
                model_format=args.model_format,
            )
        )
    except KeyboardInterrupt:
        return 0
    except ConfigurationError as exc:
        print(f"kernl-trio twilio: {exc}", file=sys.stderr)
        return 2
    return 0
