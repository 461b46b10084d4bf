"""What every command shares: exit codes, argument types, errors as one-line messages, logs."""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import sys
import traceback
import urllib.parse
from typing import Any, NoReturn

import orjson

from .._errors import collapse
from .._net import check_port
from ..errors import ConfigurationError, HandshakeFailed, KernlTrioError, TransportError

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_CANNOT_START",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliError",
    "JsonFormatter",
    "Parser",
    "add_common_options",
    "log_level",
    "port_number",
    "report",
    "setup_logging",
    "websocket_url",
]

EXIT_OK = 0
"""Done: the demo ran to its end, or a server stopped when asked (Ctrl-C, SIGTERM)."""
EXIT_FAILED = 1
"""The command started but failed: the demo did not finish, an unexpected error."""
EXIT_USAGE = 2
"""The command line is wrong: an unknown option, a bad value, options that do not go together."""
EXIT_CANNOT_START = 3
"""The command line is fine but the world is not: a missing or unusable file, no API key, a
port in use, a host that does not resolve, a server that is not there or refuses us."""
EXIT_INTERRUPTED = 130
"""The demo was stopped by Ctrl-C (its files and summary are still written)."""

EXIT_BROKEN_PIPE = 141
"""Whoever read the output went away (``kernl-trio demo | head``): stopped quietly, with the
status of a program that SIGPIPE ended (128 + 13)."""

EXIT_CODES_HELP = (
    "exit status: 0 done (servers: stopped by Ctrl-C or SIGTERM); 1 failed while running; "
    "2 bad command line; 3 cannot start (file, API key, port, host, server); "
    "130 demo stopped by Ctrl-C; 141 output closed (| head)"
)


class CliError(Exception):
    """A failure the user can fix: printed as one line (and a hint), never a traceback."""

    def __init__(self, message: str, *, code: int = EXIT_CANNOT_START, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.hint = hint


def port_number(text: str) -> int:
    """argparse type: a TCP port, 0 to 65535."""
    try:
        return check_port(int(text))
    except (ValueError, ConfigurationError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a port (an integer from 0 to 65535; 0 picks a free one)"
        ) from None


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_level(text: str) -> str:
    """argparse type: a logging level name, any case."""
    level = text.upper()
    if level not in _LEVELS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a log level (one of {', '.join(_LEVELS).lower()})"
        )
    return level


def add_common_options(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """``--debug``/``-v``, on the main command and on each command (either place works)."""
    parser.add_argument(
        "-v",
        "--debug",
        action="store_true",
        # on a command, leave the main command's value alone unless given here
        default=False if top else argparse.SUPPRESS,
        help="show the full traceback of an error (default: one line)",
    )


class JsonFormatter(logging.Formatter):
    """One JSON object per log record: time, level, logger, message and the record's extras."""

    _STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=repr).decode()


def setup_logging(level: str, *, json: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _explain(exc: BaseException) -> CliError | None:
    """A one-line message for a failure a user can meet, or None for a real bug."""
    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, HandshakeFailed):
        return CliError(
            str(exc),
            hint="is the server running and is the URL right? "
            "(`kernl-trio serve` runs a local one)",
        )
    if isinstance(exc, ConfigurationError):
        return CliError(str(exc))
    if isinstance(exc, OSError) and exc.filename is not None:
        return CliError(f"{exc.filename}: {exc.strerror or exc}")
    if isinstance(exc, TransportError | KernlTrioError):
        return CliError(f"{type(exc).__name__}: {exc}", code=EXIT_FAILED)
    return None


def report(
    prog: str,
    exc: BaseException,
    *,
    debug: bool,
    interrupted: int | None = None,
    signal_name: str = "Ctrl-C",
) -> int:
    """Print ``exc`` for a user (one line, or the traceback with ``debug``); the exit status.

    A ``KeyboardInterrupt`` (Ctrl-C, or SIGTERM before a server listens for it) exits with
    ``interrupted``: a server's ``EXIT_OK`` (stopped when asked, even while starting), else
    ``EXIT_INTERRUPTED``.
    """
    if isinstance(exc, BaseExceptionGroup):
        exc = collapse(exc)
    if isinstance(exc, BrokenPipeError) and exc.filename is None:
        _stdout_to_devnull()
        return EXIT_BROKEN_PIPE
    if isinstance(exc, KeyboardInterrupt):
        if interrupted is None:
            by = " by SIGTERM" if signal_name == "SIGTERM" else ""
            print(f"{prog}: interrupted{by}", file=sys.stderr)
            return EXIT_INTERRUPTED
        print(f"{prog}: stopped by {signal_name} while starting", file=sys.stderr)
        return interrupted
    explained = _explain(exc)
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    if explained is None:
        print(
            f"{prog}: unexpected error: {type(exc).__name__}: {exc}"
            + ("" if debug else " (run with --debug for the traceback)"),
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(f"{prog}: error: {explained.message}", file=sys.stderr)
    if explained.hint:
        print(f"{prog}: {explained.hint}", file=sys.stderr)
    return explained.code


def _stdout_to_devnull() -> None:
    """Point standard output at /dev/null, so the interpreter's last flush of what is left
    for the reader that went away does not fail again (as Python's documentation advises)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor (e.g. captured in a test)
        pass


def usage_error(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    """Exit as argparse does for a bad command line (status 2 and the message)."""
    parser.error(message)


class Parser(argparse.ArgumentParser):
    """``argparse`` with a bad command line as one line (and where to look), not the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def websocket_url(text: str) -> str:
    """argparse type: a ``ws://`` or ``wss://`` URL with a host (and a valid port)."""
    parts = urllib.parse.urlsplit(text)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: the port is not 0 to 65535") from None
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a WebSocket URL (ws://HOST:PORT/PATH or wss://HOST/PATH)"
        )
    return text
