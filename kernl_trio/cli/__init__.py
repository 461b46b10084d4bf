"""The command line: ``kernl-trio COMMAND`` (also ``python -m kernl_trio COMMAND``).

Each command is one module of this package with a ``register(commands)`` function that adds
its parser to the ``commands`` sub-parsers and sets ``run`` (``run(args) -> exit status``) as
the parser's default; :data:`COMMANDS` lists them in ``--help`` order. A command reports a
failure its user can fix by raising :class:`~kernl_trio.cli._common.CliError`; any other
exception is printed as one line too (``--debug`` shows the traceback). Exit statuses are
the ``EXIT_*`` constants of :mod:`kernl_trio.cli._common` (docs/demo.md lists them).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import sys
from collections.abc import Sequence

from ._common import EXIT_CODES_HELP, EXIT_OK, EXIT_USAGE, add_common_options, report

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
    main_parser = argparse.ArgumentParser(
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``kernl-trio`` with ``argv`` (default: ``sys.argv[1:]``); the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser().parse_args(args_list)
    except SystemExit as exit_:  # --help, --version, or a usage error (already printed)
        code = exit_.code
        return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_USAGE)
    prog = f"kernl-trio {args.command}"
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        status: int = args.run(args)
    except (Exception, KeyboardInterrupt, BaseExceptionGroup) as exc:
        return report(prog, exc, debug=args.debug)
    finally:  # a command's log set-up ends with it (main may run in-process, e.g. in tests)
        root.handlers[:] = handlers
        root.setLevel(level)
    return status
