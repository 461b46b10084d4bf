"""``kernl-trio web``: serve the browser page, one session per tab.

Against the embedded realtime server by default (no key, no network: it detects speech but
cannot recognise it, so it takes each utterance as the next line of the demo script), or any
realtime server with ``--model-url`` (OpenAI's needs ``OPENAI_API_KEY``; ``--openai`` is
short for its URL). Ctrl-C (or SIGTERM) closes every tab's socket and stops.

:func:`add_web_arguments` registers its options on any ``argparse`` parser, :func:`run_web`
is the async entry (``task_status.started(server)``) and :func:`main_web` the whole command.
"""

from __future__ import annotations

import argparse
import os
import signal
import ssl
import sys
import urllib.parse
from collections.abc import Sequence
from functools import partial

import attrs
import trio

from .._errors import collapse
from .._net import api_key_missing
from ..agent import RealtimeAgent
from ..errors import ConfigurationError
from ..model import RealtimeModel
from ._common import (
    EXIT_CANNOT_START,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    add_common_options,
    log_level,
    port_number,
    setup_logging,
    websocket_url,
)

__all__ = ["WebOptions", "add_web_arguments", "main_web", "run_web", "web_parser"]

OPENAI_URL = "wss://api.openai.com/v1/realtime"


@attrs.frozen
class WebOptions:
    """What ``kernl-trio web`` was asked for."""

    model_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    agent: str | None = None
    allow_origin: tuple[str, ...] = ()
    certfile: str | None = None
    keyfile: str | None = None


def add_web_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Register ``kernl-trio web``'s options on ``parser``."""
    parser.add_argument(
        "--model-url",
        type=websocket_url,
        help="a realtime server (e.g. wss://api.openai.com/v1/realtime, needs OPENAI_API_KEY); "
        "default: the embedded server, no key needed",
    )
    parser.add_argument(
        "--openai", action="store_true", help=f"short for --model-url {OPENAI_URL} (default: off)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="(default: %(default)s)")
    parser.add_argument(
        "--port", type=port_number, default=8000, help="(default: %(default)s; 0: a free port)"
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("KERNL_TRIO_WEB_TOKEN"),
        help="a shared secret the page must pass as ?token= (default: $KERNL_TRIO_WEB_TOKEN)",
    )
    parser.add_argument(
        "--agent",
        help="module:attribute of a RealtimeAgent (default: the demo's weather agent)",
    )
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="another origin allowed to open the WebSocket (repeat; '*' for any; "
        "default: only the page's own origin)",
    )
    parser.add_argument(
        "--certfile", help="serve HTTPS with this certificate (PEM; default: plain HTTP)"
    )
    parser.add_argument("--keyfile", help="the certificate's private key (PEM; default: none)")
    parser.add_argument(
        "--log-level", type=log_level, default="WARNING", help="(default: %(default)s)"
    )
    return parser


def web_parser() -> argparse.ArgumentParser:
    return add_web_arguments(
        argparse.ArgumentParser(
            prog="kernl-trio web",
            description="Talk to an agent from a web page: serve the page and one realtime "
            "session per browser tab.",
        )
    )


def options_from(args: argparse.Namespace) -> WebOptions:
    """The :class:`WebOptions` of parsed arguments (raises ConfigurationError for a command
    line that is wrong in itself)."""
    model_url = OPENAI_URL if args.openai else args.model_url
    if args.openai and args.model_url:
        raise ConfigurationError("give --openai or --model-url, not both")
    if bool(args.certfile) != bool(args.keyfile):
        raise ConfigurationError("--certfile and --keyfile go together")
    for origin in args.allow_origin:
        _check_origin(origin)
    return WebOptions(
        model_url=model_url,
        host=args.host,
        port=args.port,
        token=args.token or None,
        agent=args.agent,
        allow_origin=tuple(args.allow_origin),
        certfile=args.certfile,
        keyfile=args.keyfile,
    )


def _check_origin(origin: str) -> None:
    """An ``--allow-origin`` is ``*`` or exactly what a browser sends: scheme://host[:port]."""
    if origin == "*":
        return
    parts = urllib.parse.urlsplit(origin)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.path
        or parts.query
        or parts.fragment
        or origin != origin.strip()
    ):
        raise ConfigurationError(
            f"--allow-origin {origin!r} is not an origin: give scheme://host[:port] as the "
            "browser sends it, e.g. https://app.example.com (no path, no trailing slash), or '*'"
        )


def check_startable(options: WebOptions) -> None:
    """Refuse (:class:`CliError`, status 3) what would only fail once serving: a remote model
    without ``OPENAI_API_KEY``, a certificate that cannot be loaded."""
    url = options.model_url
    if url is not None and api_key_missing(url):
        raise CliError(
            f"--model-url {url} needs OPENAI_API_KEY in the environment; set it, or run a "
            "local server (`kernl-trio serve`) and pass its URL as --model-url",
            code=EXIT_CANNOT_START,
        )
    if options.certfile and options.keyfile:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        for flag, path in (("--certfile", options.certfile), ("--keyfile", options.keyfile)):
            if not os.path.isfile(path):
                raise CliError(f"{flag} {path}: no such file", code=EXIT_CANNOT_START)
        try:
            context.load_cert_chain(options.certfile, options.keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise CliError(
                f"cannot load --certfile {options.certfile} with --keyfile {options.keyfile}: "
                f"{exc.strerror or exc}",
                code=EXIT_CANNOT_START,
            ) from None


async def run_web(
    options: WebOptions,
    *,
    agent: RealtimeAgent | None = None,
    task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until SIGINT/SIGTERM (or cancellation); ``task_status.started(server)``.
    ``agent`` overrides ``options.agent``."""
    from ..demo.agent import weather_agent
    from .twilio import load_agent

    if agent is None:
        agent = load_agent(options.agent) if options.agent else weather_agent
    try:
        await _serve(agent, options, task_status)
    except BaseExceptionGroup as group:
        raise collapse(group) from None


async def _serve(
    agent: RealtimeAgent, options: WebOptions, task_status: trio.TaskStatus[object]
) -> None:
    from ..channels.browser._server import BrowserServer, serve_browser
    from ..demo.script import SESSION_CONFIG, TRANSCRIPTS, server_script
    from ..local.embedded import EmbeddedServer
    from ..providers.openai import OpenAIRealtimeModel
    from .serve import start_listening

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            notice = None
            model: RealtimeModel
            if options.model_url is None:
                embedded = EmbeddedServer(
                    server_script(),
                    transcripts=lambda index, audio: TRANSCRIPTS[index % len(TRANSCRIPTS)],
                )
                await nursery.start(embedded.run)
                model = OpenAIRealtimeModel(base_url=embedded.url)
                notice = (
                    "Embedded model (no key, no network): it hears when you speak but cannot "
                    "recognise words, so it takes each thing you say as the next line of the "
                    "demo: " + " / ".join(TRANSCRIPTS)
                )
                where = f"the embedded realtime server at {embedded.url}"
            else:
                model = OpenAIRealtimeModel(base_url=options.model_url)
                where = options.model_url
            server: BrowserServer = await start_listening(
                nursery,
                partial(
                    serve_browser,
                    agent,
                    model=model,
                    host=options.host,
                    port=options.port,
                    token=options.token,
                    allowed_origins=options.allow_origin or None,
                    session_config=SESSION_CONFIG,
                    notice=notice,
                    certfile=options.certfile,
                    keyfile=options.keyfile,
                ),
                options.host,
                options.port,
            )
            print(
                f"kernl-trio web: open {server.url} (agent {agent.id!r}, model: {where}); "
                "Ctrl+C stops",
                flush=True,
            )
            task_status.started(server)
            async for _ in signals:
                print("kernl-trio web: closing the tabs and stopping", flush=True)
                with trio.move_on_after(10):
                    await server.shutdown()
                nursery.cancel_scope.cancel()
                break


NAME = "web"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        NAME,
        help="talk to an agent from a web page (no key needed)",
        description="Talk to an agent from a web page: serve the page and one realtime "
        "session per browser tab. Ctrl-C or SIGTERM stops it (exit 0).",
    )
    add_common_options(parser)
    add_web_arguments(parser)
    parser.set_defaults(run=run, interrupted=EXIT_OK)


def run(args: argparse.Namespace) -> int:
    from .twilio import load_agent

    try:
        options = options_from(args)
        agent = load_agent(options.agent) if options.agent else None
    except ConfigurationError as exc:
        raise CliError(str(exc), code=EXIT_USAGE) from exc.__cause__
    check_startable(options)
    setup_logging(args.log_level)
    trio.run(partial(run_web, options, agent=agent))
    return EXIT_OK


def main_web(argv: Sequence[str] | None = None) -> int:
    """``kernl-trio web ...`` with ``argv``: the exit status (as ``kernl-trio web``)."""
    from . import main

    return main([NAME, *(sys.argv[1:] if argv is None else argv)])
