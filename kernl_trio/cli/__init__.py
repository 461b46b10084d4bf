"""The command line: ``kernl-trio COMMAND`` (also ``python -m kernl_trio COMMAND``).

Each command is one module of this package with a ``register(commands)`` function that adds
its parser to the ``commands`` sub-parsers and sets ``run`` (``run(args) -> exit status``) as
the parser's default; :data:`COMMANDS` lists them in ``--help`` order. A command reports a
failure its user can fix by raising :class:`~kernl_trio.cli._common.CliError`; any other
exception is printed as one line too (``--debug`` shows the traceback). Exit statuses are
the ``EXIT_*`` constants of :mod:`kernl_trio.cli._common` (docs/cli.md lists them).

This module imports little at the top, so that a signal during start-up (while the commands
and their dependencies load) is already one line, not a traceback: see :func:`main`.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

__all__ = ["COMMANDS", "main", "parser"]

COMMANDS: tuple[str, ...] = ("demo", "serve", "twilio", "web")
"""Modules of :mod:`kernl_trio.cli`, one per command; add a name here to add a command."""


def _version() -> str:
    try:
        return importlib.metadata.version("kernl-trio")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a source checkout
        return "unknown"


def parser() -> argparse.ArgumentParser:
    """The ``kernl-trio`` argument parser, every command registered."""
    from ._common import EXIT_CODES_HELP, Parser, add_common_options

    main_parser = Parser(
        prog="kernl-trio",
        description="Realtime voice agents on trio.",
        epilog=EXIT_CODES_HELP,
    )
    main_parser.add_argument(
        "--version", action="version", version=f"%(prog)s {_version()}", help="print the version"
    )
    add_common_options(main_parser, top=True)
    commands = main_parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(commands)
    for command in commands.choices.values():
        command.epilog = command.epilog or EXIT_CODES_HELP
    return main_parser


@contextmanager
def _sigterm_as_interrupt(stopped_by: list[str]) -> Iterator[None]:
    """Until a command listens for signals itself, SIGTERM stops it as Ctrl-C does.

    SIGTERM's default would end the process silently (status -15) in the middle of starting;
    here it calls whatever handles SIGINT at that moment (Python's, which raises
    ``KeyboardInterrupt``, or trio's inside ``trio.run``), and :func:`main` reports it as one
    line. A server's own signal receiver replaces this handler while it serves.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        stopped_by.append("SIGTERM")
        handler: Callable[[int, FrameType | None], object] | int | None
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:  # SIGINT ignored or left to the system: stop anyway
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``kernl-trio`` with ``argv`` (default: ``sys.argv[1:]``); the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    stopped_by: list[str] = []
    prog, debug, interrupted = "kernl-trio", "--debug" in args_list or "-v" in args_list, None
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        with _sigterm_as_interrupt(stopped_by):
            from ._common import EXIT_OK, EXIT_USAGE

            try:
                args = parser().parse_args(args_list)
            except SystemExit as exit_:  # --help, --version, or a usage error (already printed)
                code = exit_.code
                return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_USAGE)
            prog, debug = f"kernl-trio {args.command}", args.debug
            interrupted = getattr(args, "interrupted", None)
            status: int = args.run(args)
            return status
    except (Exception, KeyboardInterrupt, BaseExceptionGroup) as exc:
        from ._common import report

        signal_name = stopped_by[0] if stopped_by else "Ctrl-C"
        return report(prog, exc, debug=debug, interrupted=interrupted, signal_name=signal_name)
    finally:  # a command's log set-up ends with it (main may run in-process, e.g. in tests)
        root.handlers[:] = handlers
        root.setLevel(level)
