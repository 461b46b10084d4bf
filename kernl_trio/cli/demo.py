"""``kernl-trio demo``: the weather agent against the embedded server, a WAV file as the user."""

from __future__ import annotations

import argparse
import wave
from pathlib import Path

from ._common import EXIT_USAGE, CliError, add_common_options, websocket_url

NAME = "demo"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        NAME,
        help="run a voice session with a tool call and a barge-in (no key, no network)",
        description=(
            "Run the weather agent through a real session over WebSocket against the embedded "
            "realtime server. The user is a generated WAV file; the transcript is printed live "
            "and what the assistant said and what was played are written as WAV files."
        ),
    )
    add_common_options(parser)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("kernl-trio-demo-out"),
        help="directory for user.wav, assistant.wav and played.wav (default: %(default)s)",
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        help="run in virtual time (MockClock): same output, no wait; only with the embedded "
        "server (default: real time)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object per event (default: text)"
    )
    parser.add_argument(
        "--url",
        type=websocket_url,
        help="a realtime server to use instead of the embedded one, e.g. "
        "wss://api.openai.com/v1/realtime (needs OPENAI_API_KEY) or the URL `kernl-trio serve` "
        "prints (default: the embedded server)",
    )
    parser.add_argument(
        "--input",
        type=Path,
        help="the user's side as a 16-bit PCM WAV file, any rate, mono or stereo "
        "(default: a generated one with the demo's three utterances)",
    )
    parser.set_defaults(run=run)


def check_input(path: Path) -> None:
    """Refuse an ``--input`` the WAV channel cannot read, with the reason."""
    from ..channels.wav import read_wav

    if not path.exists():
        raise CliError(f"--input {path}: no such file")
    if path.is_dir():
        raise CliError(f"--input {path}: is a directory, not a WAV file")
    convert = "convert it, e.g. `ffmpeg -i in.wav -ac 1 -ar 24000 -c:a pcm_s16le user.wav`"
    try:
        audio = read_wav(path)
    except PermissionError:
        raise CliError(f"--input {path}: permission denied") from None
    except (wave.Error, EOFError) as exc:
        detail = str(exc) or "it is empty or cut short"
        code = detail.removeprefix("unknown format: ")
        if code != detail:  # a WAV file, in a sample format other than PCM
            detail = _WAV_FORMATS.get(code, f"its sample format (code {code}) is not 16-bit PCM")
        raise CliError(
            f"--input {path}: not a WAV file this demo can read ({detail})", hint=convert
        ) from None
    except ValueError as exc:
        detail = str(exc).removeprefix(f"{path}: ")
        raise CliError(f"--input {path}: {detail}", hint=convert) from None
    except OSError as exc:
        raise CliError(f"--input {path}: cannot read it ({exc.strerror or exc})") from None
    if not audio:
        raise CliError(f"--input {path}: there is no audio in it (0 samples)")


_WAV_FORMATS = {
    "3": "its samples are 32-bit float, not 16-bit PCM",
    "6": "its samples are A-law, not 16-bit PCM",
    "7": "its samples are u-law, not 16-bit PCM",
    "65534": "it has a WAVE_FORMAT_EXTENSIBLE header, which Python reads from 3.12 on",
}
"""Format codes of WAV files ``wave`` refuses, as ``wave.Error`` names them."""


def run(args: argparse.Namespace) -> int:
    if args.fast and args.url is not None:
        raise CliError(
            "--fast runs in virtual time, which only the embedded server can follow; "
            "drop --fast to use --url (or drop --url)",
            code=EXIT_USAGE,
        )
    if args.input is not None:
        check_input(args.input)
    from ..demo import DemoOptions
    from ..demo import main as demo_main

    return demo_main(
        DemoOptions(out=args.out, fast=args.fast, json=args.json, url=args.url, input=args.input)
    )
