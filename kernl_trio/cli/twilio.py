"""``kernl-trio twilio``: answer phone calls (Twilio Media Streams) with an agent, as a service.

One process serves every call on one trio run; ``--workers N`` starts N such processes that
share the port (``SO_REUSEPORT``: the kernel spreads new connections across them). SIGTERM or
Ctrl-C drains: no new calls, the calls in progress get ``--grace`` seconds to finish, then the
rest are ended from this side (each session closes as usual); exit status 0. A second signal
ends the calls at once.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, TextIO

import orjson
import trio

from .._errors import collapse
from .._net import api_key_missing, ws_url
from ..agent import RealtimeAgent
from ..errors import ConfigurationError
from ..model import RealtimeModel
from ..protocol import PCM16_24K, PCMU_8K
from ._common import (
    EXIT_CANNOT_START,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    add_common_options,
    log_level,
    port_number,
    setup_logging,
    websocket_url,
)
from .serve import start_listening

if TYPE_CHECKING:
    from ..channels.twilio import TwilioServer

__all__ = [
    "NAME",
    "build_model",
    "load_agent",
    "register",
    "run",
    "run_twilio_command",
    "worker_line",
    "workers_status",
]

NAME = "twilio"
_FORMATS = {"pcmu": PCMU_8K, "pcm16": PCM16_24K}
logger = logging.getLogger("kernl_trio.cli")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        NAME,
        help="serve phone calls from Twilio Media Streams with an agent",
        description=(
            "Answer Twilio calls with a realtime agent (TwiML <Connect><Stream>): one session "
            "per call. GET /healthz answers 200 while taking calls. SIGTERM or Ctrl-C drains: "
            "no new calls (the port closes, so health checks fail), calls in progress get "
            "--grace seconds, then end; exit 0."
        ),
    )
    add_common_options(parser)
    parser.add_argument(
        "--agent",
        required=True,
        metavar="MODULE:ATTR",
        help="the agent: a RealtimeAgent, or a callable returning one (required)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=port_number, default=8080, help="0 to 65535 (default: %(default)s)"
    )
    parser.add_argument(
        "--public-url",
        type=_public_url,
        help="scheme and host Twilio connects to, e.g. wss://abc.ngrok.app; needed to check "
        "signatures (default: none)",
    )
    parser.add_argument(
        "--auth-token",
        default=os.environ.get("TWILIO_AUTH_TOKEN"),
        help="Twilio auth token to check X-Twilio-Signature; needs --public-url "
        "(default: $TWILIO_AUTH_TOKEN, else signatures are not checked)",
    )
    parser.add_argument(
        "--model-url",
        type=websocket_url,
        help="the realtime endpoint, e.g. the URL `kernl-trio serve` prints (no key needed) "
        "or any OpenAI GA-compatible server (default: the agent's model, else OpenAI with "
        "$OPENAI_API_KEY)",
    )
    parser.add_argument(
        "--model",
        default="gpt-realtime",
        help="model id sent to --model-url or OpenAI (default: %(default)s)",
    )
    parser.add_argument(
        "--model-format",
        choices=sorted(_FORMATS),
        default="pcmu",
        help="audio the model hears and speaks: pcmu passes the call through untouched "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--grace",
        type=_seconds,
        default=30.0,
        help="seconds calls in progress get to finish after SIGTERM or Ctrl-C "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="processes sharing the port, e.g. one per core (default: %(default)s)",
    )
    parser.add_argument(
        "--log-level", type=log_level, default="INFO", help="(default: %(default)s)"
    )
    parser.add_argument(
        "--log-json",
        action="store_true",
        help="one JSON object per log line, for log collectors (default: text lines)",
    )
    # set by --workers in the processes it starts
    parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--supervisor-pid", type=int, help=argparse.SUPPRESS)
    parser.set_defaults(run=run, interrupted=EXIT_OK)


def _public_url(text: str) -> str:
    """argparse type: the ``wss://`` (or ``ws://``) URL Twilio connects to, without the
    stream's path (a prefix a proxy strips is fine)."""
    try:
        return websocket_url(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not the URL Twilio connects to: give its scheme and host as in the "
            "TwiML <Stream url>, e.g. wss://abc.ngrok.app"
        ) from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0 or more)")
    return value


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of workers (1 or more)")
    return value


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
    except Exception as exc:  # the module's own code failed: its error, with --debug its traceback
        raise ConfigurationError(
            f"cannot import {module_name!r}: it raised {type(exc).__name__}: {exc}"
        ) from exc
    for name in attr.split("."):
        try:
            target = getattr(target, name)
        except AttributeError:
            raise ConfigurationError(f"{ref!r}: no attribute {name!r}") from None
    if not isinstance(target, RealtimeAgent) and callable(target):
        try:
            target = target()
        except Exception as exc:
            raise ConfigurationError(
                f"{ref!r} (called to make the agent) raised {type(exc).__name__}: {exc}"
            ) from exc
    if not isinstance(target, RealtimeAgent):
        raise ConfigurationError(f"{ref!r} is a {type(target).__name__}, not a RealtimeAgent")
    return target


def build_model(
    agent: RealtimeAgent, model_url: str | None, model_id: str = "gpt-realtime"
) -> RealtimeModel | None:
    """The bridge's model: ``model_url`` if given, else the agent's own, else OpenAI's.

    Refuses (:class:`ConfigurationError`) to start without an API key where one is needed,
    rather than failing at the first call.
    """
    from ..providers.openai import OpenAIRealtimeModel

    if model_url is None and agent.model is not None:
        return None  # the session uses the agent's model
    if api_key_missing(model_url):
        where = f"--model-url {model_url}" if model_url else "OpenAI (the default model)"
        raise ConfigurationError(
            f"{where} needs OPENAI_API_KEY in the environment; set it, or run a local server "
            "(`kernl-trio serve`) and pass its URL as --model-url"
        )
    return OpenAIRealtimeModel(model_id, base_url=model_url)


async def run_twilio_command(
    agent_ref: str | RealtimeAgent,
    *,
    port: int = 8080,
    host: str = "127.0.0.1",
    public_url: str | None = None,
    auth_token: str | None = None,
    model_format: str = "pcmu",
    model_url: str | None = None,
    model_id: str = "gpt-realtime",
    grace: float = 30.0,
    reuse_port: bool = False,
    supervisor_pid: int | None = None,
) -> None:
    """What ``kernl-trio twilio`` does in one process: serve until SIGTERM or SIGINT, then
    drain (``grace`` seconds) and return.

    A worker of ``--workers`` gets its ``supervisor_pid``: should that process vanish without
    stopping it (killed with SIGKILL, say), the worker drains as if told to, rather than go
    on answering calls on the shared port with nobody to stop it.
    """
    from ..channels.twilio import TwilioOptions, serve_twilio

    agent = load_agent(agent_ref) if isinstance(agent_ref, str) else agent_ref
    model = build_model(agent, model_url, model_id)
    options = TwilioOptions(model_format=_FORMATS[model_format])
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            server: TwilioServer = await start_listening(
                nursery,
                partial(
                    serve_twilio,
                    agent,
                    model=model,
                    host=host,
                    port=port,
                    auth_token=auth_token,
                    public_url=public_url,
                    options=options,
                    reuse_port=reuse_port,
                ),
                host,
                port,
            )
            checked = "signatures checked" if auth_token else "signatures NOT checked"
            where = model_url or ("the agent's model" if agent.model is not None else "OpenAI")
            print(
                f"kernl-trio twilio: agent {agent.id!r} answering on {server.url} "
                f"({checked}; model: {where}; health: GET /healthz); "
                "Ctrl-C or SIGTERM drains",
                flush=True,
            )
            draining = False

            def stop(why: str) -> None:
                nonlocal draining
                if draining:
                    logger.warning("%s again: ending %d calls now", why, len(server.calls))
                    nursery.start_soon(server.hang_up_all)
                    return
                draining = True
                logger.info("%s: draining (grace %g s)", why, grace)
                nursery.start_soon(_drain_then_stop, server, grace, nursery.cancel_scope)

            if supervisor_pid is not None:
                nursery.start_soon(_watch_supervisor, supervisor_pid, stop)
            async for signum in signals:
                stop(signal.Signals(signum).name)
    logger.info("stopped")


SUPERVISOR_CHECK_S = 1.0
"""How often a worker checks that its supervisor is still there."""


async def _watch_supervisor(pid: int, stop: Callable[[str], None]) -> None:
    """Call ``stop`` once this process's parent is no longer ``pid`` (it died: the process
    was handed to another), then return. Polled: a parent's death is no event to wait on
    portably."""
    while True:
        await trio.sleep(SUPERVISOR_CHECK_S)
        if os.getppid() != pid:
            break
    stop(f"the supervisor (pid {pid}) is gone")


async def _drain_then_stop(server: TwilioServer, grace: float, scope: trio.CancelScope) -> None:
    await server.drain(grace)
    scope.cancel()


def run(args: argparse.Namespace) -> int:
    if args.auth_token and not args.public_url:
        raise CliError(
            "--auth-token (or $TWILIO_AUTH_TOKEN) checks signatures against the URL Twilio "
            "connects to: give it as --public-url, e.g. wss://abc.ngrok.app",
            code=EXIT_USAGE,
        )
    setup_logging(args.log_level, json=args.log_json)
    try:
        agent = load_agent(args.agent)
    except ConfigurationError as exc:  # --debug shows the module's traceback
        raise CliError(str(exc), code=EXIT_USAGE) from exc.__cause__
    build_model(agent, args.model_url, args.model)  # refuse now, not at the first call
    if args.workers > 1:
        return _run_workers(args)
    try:
        trio.run(
            partial(
                run_twilio_command,
                agent,
                port=args.port,
                host=args.host,
                public_url=args.public_url,
                auth_token=args.auth_token,
                model_format=args.model_format,
                model_url=args.model_url,
                model_id=args.model,
                grace=args.grace,
                reuse_port=args.reuse_port,
                supervisor_pid=args.supervisor_pid,
            )
        )
    except BaseExceptionGroup as group:
        raise collapse(group) from None
    return EXIT_OK


# -- --workers ---------------------------------------------------------------------------------
def _reserve_port(host: str, port: int) -> tuple[socket.socket, int]:
    """A bound, not listening, SO_REUSEPORT socket holding ``port`` (a free one for 0) so every
    worker binds the same port; connections only go to listening sockets."""
    from .._net import bind_error_message

    if not hasattr(socket, "SO_REUSEPORT"):  # pragma: no cover - Windows
        raise CliError("--workers needs SO_REUSEPORT, which this system does not have")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError as exc:
        raise CliError(bind_error_message(exc, host, port)) from None
    bound: int = sock.getsockname()[1]
    return sock, bound


def _worker_argv(args: argparse.Namespace, port: int) -> list[str]:
    argv = [sys.executable, "-m", "kernl_trio", NAME, "--agent", args.agent]
    argv += ["--host", args.host, "--port", str(port), "--reuse-port", "--workers", "1"]
    argv += ["--supervisor-pid", str(os.getpid())]
    argv += ["--model", args.model, "--model-format", args.model_format]
    argv += ["--grace", repr(args.grace), "--log-level", args.log_level]
    if args.public_url:
        argv += ["--public-url", args.public_url]
    if args.model_url:
        argv += ["--model-url", args.model_url]
    if args.log_json:
        argv.append("--log-json")
    return argv  # the auth token travels in the environment, not in `ps`


def worker_line(text: str, index: int) -> str:
    """A worker's output line as the supervisor relays it: a JSON log record gains a
    ``"worker"`` field (so the output stays one JSON object per line), anything else a
    ``[worker i]`` prefix."""
    if text.startswith("{"):
        try:
            record = orjson.loads(text)
        except orjson.JSONDecodeError:
            record = None
        if isinstance(record, dict):
            return orjson.dumps({**record, "worker": index}).decode()
    return f"[worker {index}] {text}"


def _run_workers(args: argparse.Namespace) -> int:
    holder, port = _reserve_port(args.host, args.port)
    env = dict(os.environ)
    if args.auth_token:
        env["TWILIO_AUTH_TOKEN"] = args.auth_token
    try:
        return trio.run(_supervise, args, _worker_argv(args, port), env, port)
    finally:
        holder.close()


async def _supervise(
    args: argparse.Namespace, argv: Sequence[str], env: dict[str, str], port: int
) -> int:
    """Start the workers, relay their output, forward SIGTERM/SIGINT, wait for them all."""
    count: int = args.workers
    statuses: list[int] = []
    ready = trio.Event()
    done = trio.Event()
    up = 0
    stopping = False
    processes: list[trio.Process] = []

    async def relay(stream: trio.abc.ReceiveStream, index: int, out: TextIO) -> None:
        """A worker's output, line by line, prefixed with its number."""
        nonlocal up
        buffer = b""
        async for chunk in stream:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                text = line.decode(errors="replace")
                print(worker_line(text, index), file=out, flush=True)
                if out is sys.stdout and "answering on" in text:
                    up += 1
                    if up == count:
                        ready.set()

    async def worker(index: int, task_status: trio.TaskStatus[None]) -> None:
        # Its own session: a Ctrl-C in the terminal reaches this process only, which forwards
        # one SIGTERM, so a worker sees one signal (drain), not two (end calls now).
        process = await trio.lowlevel.open_process(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        processes.append(process)
        task_status.started()
        assert process.stdout is not None and process.stderr is not None
        async with trio.open_nursery() as relays:
            relays.start_soon(relay, process.stdout, index, sys.stdout)
            relays.start_soon(relay, process.stderr, index, sys.stderr)
        status = await process.wait()
        statuses.append(status)
        if len(statuses) == count:
            done.set()
        if status != EXIT_OK and not stopping:
            # one worker that cannot start (or dies) stops the service
            for other in processes:
                if other.returncode is None:
                    other.send_signal(signal.SIGTERM)

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            for index in range(count):
                await nursery.start(worker, index)

            async def announce() -> None:
                await ready.wait()
                print(
                    f"kernl-trio twilio: {count} workers answering on "
                    f"{ws_url(args.host, port)} (SO_REUSEPORT)",
                    flush=True,
                )

            async def forward() -> None:
                nonlocal stopping
                async for signum in signals:
                    stopping = True
                    for process in processes:
                        if process.returncode is None:
                            process.send_signal(signal.SIGTERM)
                    logger.info("%s: draining %d workers", signal.Signals(signum).name, count)

            nursery.start_soon(announce)
            nursery.start_soon(forward)
            await done.wait()
            nursery.cancel_scope.cancel()
    return workers_status(statuses, stopping=stopping)


def workers_status(statuses: Sequence[int], *, stopping: bool) -> int:
    """The supervisor's exit status from its workers'. Once it has asked them to stop, a
    worker the signal caught before it could drain (still starting: 130, or killed by it)
    stopped as asked too."""
    asked = (EXIT_INTERRUPTED, -signal.SIGTERM, -signal.SIGINT) if stopping else ()
    failed = [status for status in statuses if status != EXIT_OK and status not in asked]
    if not failed:
        return EXIT_OK
    return EXIT_CANNOT_START if EXIT_CANNOT_START in failed else EXIT_FAILED
