"""The command line: ``kernl-trio demo``, ``serve``, ``twilio`` and ``web``."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import trio


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kernl-trio", description="Realtime voice agents on trio."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo",
        help="run a voice session with a tool call and a barge-in (no key, no network)",
        description=(
            "Run the weather agent through a real session over WebSocket against the embedded "
            "realtime server. The user is a generated WAV file; the transcript is printed live "
            "and what the assistant said and what was played are written as WAV files."
        ),
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("kernl-trio-demo-out"),
        help="directory for user.wav, assistant.wav and played.wav (default: %(default)s)",
    )
    demo.add_argument(
        "--fast", action="store_true", help="run in virtual time (MockClock): same output, no wait"
    )
    demo.add_argument("--json", action="store_true", help="print one JSON object per event")
    demo.add_argument(
        "--url",
        help="a realtime server to use instead of the embedded one "
        "(e.g. wss://api.openai.com/v1/realtime; needs OPENAI_API_KEY)",
    )
    demo.add_argument(
        "--input", type=Path, help="the user's side as a 16-bit WAV file (default: generated)"
    )

    serve = commands.add_parser(
        "serve",
        help="run the embedded realtime server standalone",
        description=(
            "Serve the OpenAI GA realtime protocol on a WebSocket, with the embedded server's "
            "turn detection and the demo's weather rules. Prints its URL; Ctrl-C stops it."
        ),
    )
    serve.add_argument("--host", default="127.0.0.1", help="(default: %(default)s)")
    serve.add_argument("--port", type=int, default=0, help="(default: a free port)")
    serve.add_argument(
        "--transcript",
        action="append",
        default=[],
        metavar="TEXT",
        help="what the user's n-th committed utterance says (repeat, in order); "
        "the server cannot recognise speech",
    )

    commands.add_parser(
        "twilio",
        help="serve phone calls from Twilio Media Streams (see kernl-trio twilio --help)",
        add_help=False,
    )
    # -- kernl-trio web (the browser channel): the whole command is in its own module --------
    commands.add_parser(
        "web", help="talk to an agent from a web page (see kernl-trio web --help)", add_help=False
    )
    return parser


def _twilio(argv: Sequence[str]) -> int:
    if importlib.util.find_spec("kernl_trio.channels.twilio") is None:
        print("kernl-trio twilio: not available in this installation", file=sys.stderr)
        return 2
    module = importlib.import_module("kernl_trio.channels.twilio")
    entry = getattr(module, "main_twilio", None)
    if entry is None:
        print("kernl-trio twilio: not available in this installation", file=sys.stderr)
        return 2
    status = entry(list(argv))
    return status if isinstance(status, int) else 0


def _serve(host: str, port: int, transcripts: Sequence[str]) -> int:
    from .demo.script import server_script
    from .testing.embedded import EmbeddedServer

    async def serve() -> None:
        server = EmbeddedServer(
            server_script(), transcripts=tuple(transcripts), host=host, port=port
        )
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(server.run)
                print(f"kernl-trio embedded realtime server listening on {server.url}", flush=True)
                async for _ in signals:  # Ctrl-C or a polite kill: stop serving
                    nursery.cancel_scope.cancel()
                    break

    trio.run(serve)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "twilio":
        return _twilio(args[1:])
    if args and args[0] == "web":  # kernl-trio web: kernl_trio/channels/browser/cli.py
        from .channels.browser.cli import main_web

        return main_web(args[1:])
    options = _parser().parse_args(args)
    if options.command == "serve":
        return _serve(options.host, options.port, options.transcript)
    from .demo import DemoOptions
    from .demo import main as demo_main

    return demo_main(
        DemoOptions(
            out=options.out,
            fast=options.fast,
            json=options.json,
            url=options.url,
            input=options.input,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
