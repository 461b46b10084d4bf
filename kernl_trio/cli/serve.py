"""``kernl-trio serve``: the embedded realtime server on its own, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio

from .._errors import collapse
from ._common import (
    EXIT_OK,
    CliError,
    add_common_options,
    log_level,
    port_number,
    setup_logging,
)

NAME = "serve"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        NAME,
        help="run the embedded realtime server standalone",
        description=(
            "Serve the OpenAI GA realtime protocol on a WebSocket, with the embedded server's "
            "turn detection and the demo's weather rules. Prints its URL; Ctrl-C or SIGTERM "
            "stops it (exit 0). No key, no network: point a model's base_url, `kernl-trio "
            "demo --url` or `kernl-trio twilio --model-url` at the URL."
        ),
    )
    add_common_options(parser)
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=port_number, default=0, help="0 to 65535 (default: 0, a free port)"
    )
    parser.add_argument(
        "--transcript",
        action="append",
        default=[],
        metavar="TEXT",
        help="what the user's n-th committed utterance says (repeat, in order); "
        "the server cannot recognise speech (default: none, the server answers that it did "
        "not hear)",
    )
    parser.add_argument(
        "--log-level", type=log_level, default="WARNING", help="(default: %(default)s)"
    )
    parser.set_defaults(run=run, interrupted=EXIT_OK)


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    trio.run(_serve, args.host, args.port, args.transcript)
    return 0


async def _serve(host: str, port: int, transcripts: Sequence[str]) -> None:
    from ..demo.script import server_script
    from ..local.embedded import EmbeddedServer

    server = EmbeddedServer(server_script(), transcripts=tuple(transcripts), host=host, port=port)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await start_listening(nursery, server.run, host, port)
            print(f"kernl-trio embedded realtime server listening on {server.url}", flush=True)
            async for signum in signals:  # Ctrl-C or a polite kill: stop serving
                logging.getLogger("kernl_trio.cli").info(
                    "%s: stopping", signal.Signals(signum).name
                )
                nursery.cancel_scope.cancel()
                break


async def start_listening(
    nursery: trio.Nursery, start: Callable[..., Awaitable[object]], host: str, port: int
) -> Any:
    """``await nursery.start(start)``, with a failure to listen as a :class:`CliError`."""
    from .._net import bind_error_message

    try:
        return await nursery.start(start)
    except BaseExceptionGroup as group:
        error = collapse(group)
    except OSError as exc:
        error = exc
    if isinstance(error, OSError):
        raise CliError(bind_error_message(error, host, port)) from None
    raise error
