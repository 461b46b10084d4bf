"""Every failure a user can cause on the command line is one line and a documented exit status.

The CLI runs in-process through ``kernl_trio.cli.main(argv)`` (it calls ``trio.run`` itself,
so these tests are synchronous); servers the tests need run in a thread.
"""

from __future__ import annotations

import argparse
import socket
import struct
import sys
import threading
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernl_trio.cli import main, parser
from kernl_trio.cli._common import EXIT_CANNOT_START, EXIT_USAGE
from kernl_trio.local.server import ScriptedServer

AGENT = "tests.test_twilio_server:AGENT"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def one_line_error(err: str, *needles: str) -> None:
    """The error is a message (no traceback) that mentions each needle."""
    assert "Traceback" not in err and "ExceptionGroup" not in err, err
    assert err.startswith("kernl-trio ") and "error:" in err, err
    for needle in needles:
        assert needle in err, err


def one_usage_line(err: str, needle: str) -> None:
    """A bad command line is one line naming the problem and --help, not argparse's usage."""
    assert err.count("\n") == 1 and "usage:" not in err and needle in err, err
    assert err.startswith("kernl-trio") and err.rstrip().endswith("--help`)"), err


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def refusing_server() -> Iterator[str]:
    """An HTTP server that answers every upgrade with 403."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.05)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\n\r\nno\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"ws://127.0.0.1:{port}/v1/realtime"
    stop.set()
    thread.join(5)
    listener.close()


@pytest.fixture(autouse=True)
def no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)


# -- demo ------------------------------------------------------------------------------------------
def test_demo_url_with_nothing_listening(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = f"ws://127.0.0.1:{free_port()}/v1/realtime"
    status, _, err = run_cli(capsys, "demo", "--url", url, "--out", str(tmp_path))
    assert status == EXIT_CANNOT_START
    one_line_error(err, url, "kernl-trio serve")


def test_demo_url_to_a_server_that_refuses_the_upgrade(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, refusing_server: str
) -> None:
    status, _, err = run_cli(capsys, "demo", "--url", refusing_server, "--out", str(tmp_path))
    assert status == EXIT_CANNOT_START
    one_line_error(err, "403")


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"ws://127.0.0.1:{free_port()}/v1/realtime"
    status, _, err = run_cli(capsys, "demo", "--debug", "--url", url, "--out", str(tmp_path))
    assert status == EXIT_CANNOT_START
    assert "Traceback" in err and "HandshakeFailed" in err


def test_demo_remote_url_without_a_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, _, err = run_cli(
        capsys, "demo", "--url", "wss://api.openai.com/v1/realtime", "--out", str(tmp_path)
    )
    assert status == EXIT_CANNOT_START
    one_line_error(err, "OPENAI_API_KEY")


def test_demo_fast_with_url_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"ws://127.0.0.1:{free_port()}/v1/realtime"
    status, _, err = run_cli(capsys, "demo", "--fast", "--url", url, "--out", str(tmp_path))
    assert status == EXIT_USAGE
    one_line_error(err, "--fast", "virtual time")


def test_demo_input_missing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.wav"
    status, _, err = run_cli(capsys, "demo", "--input", str(missing), "--out", str(tmp_path))
    assert status == EXIT_CANNOT_START
    one_line_error(err, str(missing), "no such file")


def test_demo_input_not_a_wav(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    text = tmp_path / "notes.wav"
    text.write_text("these are not samples\n")
    status, _, err = run_cli(capsys, "demo", "--input", str(text), "--out", str(tmp_path))
    assert status == EXIT_CANNOT_START
    one_line_error(err, str(text), "not a WAV file")


def test_demo_input_in_an_unsupported_sample_format(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    eight_bit = tmp_path / "8bit.wav"
    with wave.open(str(eight_bit), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(1)
        writer.setframerate(8000)
        writer.writeframes(b"\x80" * 800)
    status, _, err = run_cli(capsys, "demo", "--input", str(eight_bit), "--out", str(tmp_path))
    assert status == EXIT_CANNOT_START
    one_line_error(err, "16-bit", "8-bit")


def wav_bytes(fmt: int, *, rate: int = 8000, bits: int = 16, data: bytes = bytes(320)) -> bytes:
    """A WAV file with any format code in its header (``wave`` writes PCM only)."""
    align = bits // 8
    fmt_chunk = struct.pack("<HHIIHH", fmt, 1, rate, rate * align, align, bits)
    body = b"WAVEfmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize(
    ("header", "needle"),
    [
        (wav_bytes(3, bits=32), "its samples are 32-bit float, not 16-bit PCM"),
        (wav_bytes(6, bits=8), "its samples are A-law, not 16-bit PCM"),
        pytest.param(
            wav_bytes(0xFFFE),
            "WAVE_FORMAT_EXTENSIBLE",
            marks=pytest.mark.skipif(sys.version_info >= (3, 12), reason="wave reads it"),
        ),
        (wav_bytes(1, rate=0), "sample rate should be over 0"),
        (wav_bytes(1, data=b""), "there is no audio in it"),
    ],
    ids=["float", "alaw", "extensible", "rate-0", "empty"],
)
def test_demo_input_that_is_a_wav_but_not_usable(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, header: bytes, needle: str
) -> None:
    path = tmp_path / "in.wav"
    path.write_bytes(header)
    status, out, err = run_cli(capsys, "demo", "--input", str(path), "--out", str(tmp_path))
    assert status == EXIT_CANNOT_START and out == ""
    one_line_error(err.lower(), needle.lower(), str(path))


# -- twilio ----------------------------------------------------------------------------------------
def test_twilio_auth_token_without_public_url(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_cli(capsys, "twilio", "--agent", AGENT, "--auth-token", "secret")
    assert status == EXIT_USAGE
    one_line_error(err, "--public-url")
    assert "secret" not in err


def test_twilio_without_an_api_key_refuses_at_start(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_cli(capsys, "twilio", "--agent", AGENT, "--port", "0")
    assert status == EXIT_CANNOT_START
    one_line_error(err, "OPENAI_API_KEY", "--model-url")
    assert "answering" not in out  # it never listened


def test_twilio_bad_agent(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_cli(capsys, "twilio", "--agent", "no_such_module_xyz:agent")
    assert status == EXIT_USAGE
    one_line_error(err, "cannot import")


# -- web -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        ["--openai"],
        ["--model-url", "wss://api.openai.com/v1/realtime"],
        ["--model-url", "wss://models.example.com/v1/realtime"],
    ],
)
def test_web_remote_model_without_a_key(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    status, out, err = run_cli(capsys, "web", "--port", "0", *argv)
    assert status == EXIT_CANNOT_START  # as demo and twilio: the world, not the command line
    one_line_error(err, "OPENAI_API_KEY", "--model-url")
    assert "open http" not in out  # it never served


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--model-url", "http://127.0.0.1:9/v1/realtime"], "not a WebSocket URL"),
        (["--model-url", "127.0.0.1:9"], "not a WebSocket URL"),
        (["--openai", "--model-url", "ws://127.0.0.1:9/"], "not both"),
        (["--allow-origin", "https://app.example/"], "not an origin"),
        (["--allow-origin", "app.example"], "not an origin"),
        (["--allow-origin", "https://app.example/path"], "not an origin"),
        (["--certfile", "cert.pem"], "go together"),
        (["--agent", "no_such_module_xyz:agent"], "cannot import"),
        (["--agent", "os:path"], "not a RealtimeAgent"),
    ],
)
def test_web_bad_command_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    status, out, err = run_cli(capsys, "web", "--port", "0", *argv)
    assert status == EXIT_USAGE
    one_line_error(err, needle)
    assert "open http" not in out


def test_web_certificate_missing_or_unusable(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = str(tmp_path / "cert.pem")
    status, _, err = run_cli(
        capsys, "web", "--port", "0", "--certfile", missing, "--keyfile", missing
    )
    assert status == EXIT_CANNOT_START
    one_line_error(err, f"--certfile {missing}: no such file")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    status, _, err = run_cli(
        capsys, "web", "--port", "0", "--certfile", str(garbage), "--keyfile", str(garbage)
    )
    assert status == EXIT_CANNOT_START
    one_line_error(err, "cannot load --certfile")


# -- listening: serve, twilio and web --------------------------------------------------------------
LOCAL_MODEL = ("--model-url", "ws://127.0.0.1:9/v1/realtime")  # never dialled in these tests
LISTENERS = [["serve"], ["twilio", "--agent", AGENT, *LOCAL_MODEL], ["web"]]


@pytest.mark.parametrize("command", LISTENERS)
def test_port_already_in_use(
    capsys: pytest.CaptureFixture[str], busy_port: int, command: list[str]
) -> None:
    status, _, err = run_cli(capsys, *command, "--port", str(busy_port))
    assert status == EXIT_CANNOT_START
    one_line_error(err, f"port {busy_port} is already in use")


@pytest.mark.parametrize("command", LISTENERS)
@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_out_of_range_port(
    capsys: pytest.CaptureFixture[str], command: list[str], port: str
) -> None:
    status, _, err = run_cli(capsys, *command, "--port", port)
    assert status == EXIT_USAGE
    one_usage_line(err, "is not a port")


@pytest.mark.parametrize("command", LISTENERS)
def test_unresolvable_host(capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    status, _, err = run_cli(capsys, *command, "--host", "no-such-host.invalid", "--port", "0")
    assert status == EXIT_CANNOT_START
    one_line_error(err, "cannot resolve host 'no-such-host.invalid'")


@pytest.mark.parametrize("command", LISTENERS)
def test_bogus_log_level(capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    status, _, err = run_cli(capsys, *command, "--log-level", "bogus")
    assert status == EXIT_USAGE
    one_usage_line(err, "'bogus' is not a log level")


def test_scripted_server_url_brackets_ipv6() -> None:
    assert ScriptedServer(host="::1", port=8000).url == "ws://[::1]:8000/v1/realtime"
    assert ScriptedServer(port=8000).url == "ws://127.0.0.1:8000/v1/realtime"


# -- the main command ------------------------------------------------------------------------------
def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_cli(capsys, "--version")
    assert status == 0
    assert out.startswith("kernl-trio ") and out.strip() != "kernl-trio"


def test_every_option_shows_its_default_and_help_shows_exit_codes() -> None:
    main_parser = parser()
    commands = next(a for a in main_parser._actions if isinstance(a, argparse._SubParsersAction))
    checked = 0
    for name, command in commands.choices.items():
        assert "exit status: 0" in command.format_help()
        for action in command._actions:
            if action.help in (None, argparse.SUPPRESS) or not action.option_strings:
                continue
            if isinstance(action, argparse._HelpAction):
                continue
            assert "default" in action.help or action.required, (name, action.option_strings)
            checked += 1
    assert checked >= 20
    assert "exit status: 0" in main_parser.format_help()


# -- more of what a user can get wrong -------------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        ["twilio"],
        [],
        ["twilio", "--agent", AGENT, "--workers", "0"],
        ["twilio", "--agent", AGENT, "--grace", "nan"],
        ["demo", "--no-such-option"],
    ],
    ids=["missing-agent", "no-command", "workers-0", "grace-nan", "unknown-option"],
)
def test_a_bad_command_line_is_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    status, _, err = run_cli(capsys, *argv)
    assert status == EXIT_USAGE
    one_usage_line(err, "error:")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["demo", "--url", "localhost:8000"], "not a WebSocket URL"),
        (["demo", "--url", "http://127.0.0.1:9/v1/realtime"], "not a WebSocket URL"),
        (["demo", "--url", "ws://127.0.0.1:99999/v1/realtime"], "port is not 0 to 65535"),
        (["twilio", "--agent", AGENT, "--model-url", "127.0.0.1:9"], "not a WebSocket URL"),
        (["web", "--model-url", "https://api.openai.com"], "not a WebSocket URL"),
        (
            ["twilio", "--agent", AGENT, "--auth-token", "t", "--public-url", "abc.ngrok.app"],
            "not the URL Twilio connects to",
        ),
    ],
)
def test_a_url_that_is_not_a_websocket_url_is_refused_up_front(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    status, out, err = run_cli(capsys, *argv)
    assert status == EXIT_USAGE and out == ""
    one_usage_line(err, needle)


@pytest.fixture
def agent_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Agent modules whose own code fails: on import, or when called to make the agent."""
    (tmp_path / "broken_agent_module.py").write_text("agent = undefined_name\n")
    (tmp_path / "failing_agent_factory.py").write_text(
        "def make():\n    raise RuntimeError('no config file')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))


@pytest.mark.usefixtures("agent_modules")
@pytest.mark.parametrize("command", ["twilio", "web"])
@pytest.mark.parametrize(
    ("ref", "needle"),
    [
        ("broken_agent_module:agent", "raised NameError: name 'undefined_name' is not defined"),
        ("failing_agent_factory:make", "raised RuntimeError: no config file"),
    ],
)
def test_an_agent_module_that_fails_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], command: str, ref: str, needle: str
) -> None:
    status, _, err = run_cli(capsys, command, "--agent", ref, *LOCAL_MODEL, "--port", "0")
    assert status == EXIT_USAGE
    one_line_error(err, needle)
    assert err.count("\n") == 1
    # --debug shows where, in the user's module
    status, _, err = run_cli(capsys, command, "-v", "--agent", ref, *LOCAL_MODEL, "--port", "0")
    assert status == EXIT_USAGE and "Traceback" in err and "_agent_" in err
