"""The browser channel without a browser: a Python WebSocket client plays the page.

serve_browser (hypercorn) on 127.0.0.1, the scripted model server behind it; the "page" sends
microphone frames and played reports as the real page does, so the checks here (origin, token,
limits, pacing, truncation at the reported position, teardown) run in milliseconds. The same
flow in a real Chromium is tests/test_browser_chromium.py.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import logging
import math
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import warnings
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
import trio.testing
import trio_websocket

from kernl_trio.agent import RealtimeAgent
from kernl_trio.channels.browser import (
    BrowserMalformed,
    BrowserOptions,
    BrowserServer,
    BrowserTab,
    display_message,
    serve_browser,
)
from kernl_trio.cli._common import EXIT_CANNOT_START
from kernl_trio.cli.web import main_web, web_parser
from kernl_trio.protocol import ToolCall, ToolCancelled, TranscriptOutput
from kernl_trio.providers.openai import OpenAIRealtimeModel
from kernl_trio.session import ToolOutput
from kernl_trio.testing import AudioReply, Reply, ScriptedServer
from kernl_trio.testing.server import ServerConnection

AGENT = RealtimeAgent("web", name="Web agent", instructions="Be brief.")
RESPONSE_CREATE: dict[str, Any] = {"type": "response.create"}
BYTES_PER_MS = 48


async def start(
    nursery: trio.Nursery, model: Any = None, **kwargs: Any
) -> tuple[BrowserServer, ScriptedServer]:
    model_server: ScriptedServer = await nursery.start(ScriptedServer().run)
    if model is None:
        model = OpenAIRealtimeModel(base_url=model_server.url)
    server: BrowserServer = await nursery.start(
        partial(serve_browser, AGENT, model=model, **kwargs)
    )
    return server, model_server


class Page:
    """The page's side of the socket: collects what the server sends."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.audio: dict[str, int] = {}  # bytes received per item
        self.item: str | None = None
        self.closed: trio_websocket.CloseReason | None = None
        self.closing = False
        self.closed_by_us = trio.Event()
        self._arrived = trio.Event()

    async def close(self, code: int, reason: str) -> None:
        """Close the socket as a tab does (the close handshake)."""
        self.closing = True
        try:
            await self.ws.aclose(code, reason)
        finally:
            self.closed_by_us.set()

    async def run(self) -> None:
        try:
            while True:
                frame = await self.ws.get_message()
                if isinstance(frame, bytes):
                    assert self.item is not None, "audio before its item"
                    self.audio[self.item] = self.audio.get(self.item, 0) + len(frame)
                else:
                    message = orjson.loads(frame)
                    self.messages.append(message)
                    if message["type"] == "item":
                        self.item = message["item_id"]
                self._arrived.set()
                self._arrived = trio.Event()
        except trio_websocket.ConnectionClosed as exc:
            self.closed = exc.reason
            self._arrived.set()

    async def wait_for(self, kind: str) -> dict[str, Any]:
        while True:
            for message in self.messages:
                if message["type"] == kind:
                    return message
            if self.closed is not None:
                raise AssertionError(f"closed ({self.closed}) before {kind!r}")
            await self._arrived.wait()

    async def wait_audio(self, item: str | None, ms: float) -> None:
        while item is None or self.audio.get(item, 0) < ms * BYTES_PER_MS:
            await self._arrived.wait()
            item = item or self.item

    async def played(self, item: str, ms: float) -> None:
        await self.ws.send_message(
            orjson.dumps({"type": "played", "item_id": item, "ms": ms}).decode()
        )


async def _connect(
    server: BrowserServer,
    origin: str | None,
    query: str,
    task_status: trio.TaskStatus[Page] = trio.TASK_STATUS_IGNORED,
) -> None:
    headers = [(b"Origin", (origin or f"http://127.0.0.1:{server.port}").encode())]
    # The page owns its TCP stream: trio-websocket leaves a client's socket to the garbage
    # collector when the server refuses the handshake or closes first.
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    try:
        async with trio.open_nursery() as ws_nursery:
            ws = await trio_websocket.wrap_client_stream(
                ws_nursery, stream, f"127.0.0.1:{server.port}", f"/ws{query}", extra_headers=headers
            )
            page = Page(ws)
            task_status.started(page)
            await page.run()
            if page.closing:  # let the test's close handshake finish
                with trio.move_on_after(5):
                    await page.closed_by_us.wait()
            ws_nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        rejected = group.subgroup(trio_websocket.ConnectionRejected)
        if rejected is None:
            raise
        leaf: BaseException = rejected
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        raise leaf from None
    finally:
        await stream.aclose()


async def open_page(
    nursery: trio.Nursery, server: BrowserServer, *, origin: str | None = None, query: str = ""
) -> Page:
    page: Page = await nursery.start(_connect, server, origin, query)
    return page


async def refused(
    server: BrowserServer, *, origin: str | None = None, query: str = ""
) -> trio_websocket.ConnectionRejected:
    """The rejection a page gets when it tries to open the socket."""
    with pytest.raises(trio_websocket.ConnectionRejected) as rejected:
        await _connect(server, origin, query)
    return rejected.value


def fetch(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


# -- the page's files -------------------------------------------------------------------------
async def test_serves_the_page_and_only_its_files(nursery: trio.Nursery) -> None:
    server, _ = await start(nursery)
    base = f"http://127.0.0.1:{server.port}"
    status, headers, body = await trio.to_thread.run_sync(fetch, base + "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in headers["content-security-policy"]
    assert b'<script type="module" src="app.js">' in body
    status, headers, body = await trio.to_thread.run_sync(fetch, base + "/worklet.js")
    assert (status, headers["content-type"]) == (200, "text/javascript; charset=utf-8")
    assert b'registerProcessor("kernl-player"' in body
    for path in ("/nope.js", "/../_server.py", "/static/app.js", "/__init__.py"):
        status, _, _ = await trio.to_thread.run_sync(fetch, base + path)
        assert status == 404, path
    status, _, _ = await trio.to_thread.run_sync(fetch, base + "/", "POST")
    assert status == 405


async def test_a_port_in_use_is_an_oserror_and_leaves_no_socket_open(
    nursery: trio.Nursery,
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with trio.socket.socket() as busy:
            await busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            with pytest.raises(OSError) as refused:
                await nursery.start(partial(serve_browser, AGENT, port=port))
        assert refused.value.errno == errno.EADDRINUSE
        del refused
        gc.collect()  # a socket left open is collected here, with a ResourceWarning
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


# -- who may connect --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("origin", "query", "status"),
    [
        ("http://evil.example", "", 403),
        ("null", "", 403),
        (None, "?token=wrong", 401),
        (None, "", 401),
    ],
)
async def test_refuses_other_origins_and_wrong_tokens(
    nursery: trio.Nursery, origin: str | None, query: str, status: int
) -> None:
    server, _ = await start(nursery, token="s3cret")
    assert (await refused(server, origin=origin, query=query)).status_code == status
    assert server.statistics().refused == 1
    assert server.statistics().started == 0
    page = await open_page(nursery, server, query="?token=s3cret")
    assert (await page.wait_for("ready"))["agent"] == "Web agent"


async def test_allowed_origins_and_session_limit(nursery: trio.Nursery) -> None:
    server, _ = await start(nursery, allowed_origins=["https://app.example"], max_sessions=1)
    page = await open_page(nursery, server, origin="https://app.example")
    await page.wait_for("ready")
    assert (await refused(server)).status_code == 503


# -- a conversation ---------------------------------------------------------------------------
async def test_barge_in_truncates_at_the_position_the_page_reported(
    nursery: trio.Nursery,
) -> None:
    options = BrowserOptions(max_ahead_ms=200)
    server, model_server = await start(nursery, options=options)
    page = await open_page(nursery, server)
    ready = await page.wait_for("ready")
    conn: ServerConnection = await model_server.connection()
    await conn.expect("session.update")
    (tab,) = server.tabs.values()
    assert ready["tab"] == tab.id

    # microphone frames reach the model as input audio
    await page.ws.send_message(b"\x01\x00" * 480)
    appended = await conn.expect("input_audio_buffer.append")
    assert len(appended["audio"]) > 0

    conn.start_response(RESPONSE_CREATE, Reply.of(AudioReply("Hello there!", ms=2000)))
    await page.wait_audio(None, 200)
    item = page.item
    assert item is not None
    # Paced by the page: with nothing reported played, at most max_ahead_ms (and one
    # frame) goes out, although the model sent all 2 s at once.
    await trio.sleep(0.2)
    assert page.audio[item] <= (200 + 20) * BYTES_PER_MS
    await page.played(item, 140)
    await page.played(item, 160.5)
    await page.wait_audio(item, 360)
    assert tab.channel.played_ms(item) == 160.5

    await conn.speech_started()
    truncate = await conn.expect("conversation.item.truncate")
    assert truncate["item_id"] == item
    assert truncate["audio_end_ms"] == math.floor(160.5)
    await page.wait_for("clear")
    interrupted = await page.wait_for("interrupted")
    assert interrupted["played_ms"] == 160
    # the page answers the clear with where it stopped; that is recorded, never beyond sent
    await page.ws.send_message(orjson.dumps({"type": "cleared", "played": {item: 99999}}).decode())
    with trio.fail_after(2):
        while not tab.channel.cleared:  # noqa: ASYNC110
            await trio.sleep(0.01)
    sent_ms = page.audio[item] / BYTES_PER_MS
    assert tab.channel.cleared[0].played[item] == 99999
    assert tab.channel.played_ms(item) <= sent_ms + 0.001


async def test_closing_the_socket_ends_the_session(nursery: trio.Nursery) -> None:
    server, model_server = await start(nursery)
    page = await open_page(nursery, server)
    await page.wait_for("ready")
    conn = await model_server.connection()
    await page.ws.send_message('{"type": "bye"}')  # the page's pagehide handler says it
    await page.close(1001, "page closed")
    with trio.fail_after(2):
        await conn.closed.wait()
        while server.tabs:  # noqa: ASYNC110
            await trio.sleep(0.01)
    (record,) = server.history
    assert record.outcome == "completed"
    assert record.session_id is not None
    assert server.statistics().completed == 1


async def test_a_dropped_socket_resumes_the_same_session(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server, model_server = await start(nursery, options=BrowserOptions(resume_grace=1.5))
    page = await open_page(nursery, server)
    ready = await page.wait_for("ready")
    assert ready["resumed"] is False
    conn = await model_server.connection()
    await conn.expect("session.update")
    (tab,) = server.tabs.values()
    await page.close(3000, "network gone")  # no bye: the tab waits for the page
    with trio.fail_after(2):
        while not tab.channel.detached:  # noqa: ASYNC110
            await trio.sleep(0.01)
    conn.start_response(RESPONSE_CREATE, Reply.of(AudioReply("Said to nobody.", ms=500)))
    await trio.sleep(0.1)
    # a wrong key does not resume: it starts a session of its own
    stranger = await open_page(nursery, server, query=f"?resume={tab.id}.wrong")
    assert (await stranger.wait_for("ready"))["session_id"] != ready["session_id"]
    again = await open_page(nursery, server, query=f"?resume={ready['resume']}")
    resumed = await again.wait_for("ready")
    assert resumed["resumed"] is True
    assert resumed["session_id"] == ready["session_id"]
    assert server.tabs[tab.id] is tab
    assert tab.channel.statistics().resumes == 1
    assert len(model_server.connections) == 2  # this tab's and the stranger's
    assert not conn.closed.is_set()
    # audio spoken while no page was there was not heard, and the new page plays on
    conn.start_response(RESPONSE_CREATE, Reply.of(AudioReply("Welcome back.", ms=300)))
    await again.wait_audio(None, 300)
    assert again.item is not None
    assert tab.channel.played_ms(again.item) == 0
    # a tab that is not resumed in time ends
    await again.close(3000, "gone again")
    with trio.fail_after(10):
        await conn.closed.wait()
        while tab.id in server.tabs:  # noqa: ASYNC110
            await trio.sleep(0.01)
    assert server.history[-1].id == tab.id


async def test_resuming_takes_over_a_socket_the_server_still_thinks_alive(
    nursery: trio.Nursery,
) -> None:
    server, model_server = await start(nursery)
    old = await open_page(nursery, server)
    ready = await old.wait_for("ready")
    (tab,) = server.tabs.values()
    new = await open_page(nursery, server, query=f"?resume={ready['resume']}")
    resumed = await new.wait_for("ready")
    assert resumed["resumed"] is True
    assert resumed["session_id"] == ready["session_id"]
    with trio.fail_after(2):
        while old.closed is None:  # noqa: ASYNC110
            await trio.sleep(0.01)
    assert old.closed.code == 4001
    assert server.tabs == {tab.id: tab}
    assert len(model_server.connections) == 1
    # the new socket is the tab's now: its messages count
    await new.ws.send_message('{"type": "bye"}')
    await new.close(1000, "bye")
    with trio.fail_after(2):
        while server.tabs:  # noqa: ASYNC110
            await trio.sleep(0.01)
    assert server.history[-1].statistics.resumes == 1


async def test_shutdown_closes_tabs_going_away(nursery: trio.Nursery) -> None:
    server, model_server = await start(nursery)
    page = await open_page(nursery, server)
    await page.wait_for("ready")
    conn = await model_server.connection()
    with trio.fail_after(5):
        await server.shutdown()
        await conn.closed.wait()
        await page.wait_for("closing")
        while page.closed is None:  # noqa: ASYNC110
            await trio.sleep(0.01)
    assert page.closed.code == 1001
    assert not server.tabs


async def test_a_failing_session_is_that_tab_alone(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.socket.socket() as unused:
        await unused.bind(("127.0.0.1", 0))
        dead_port = unused.getsockname()[1]
    dead = OpenAIRealtimeModel(base_url=f"ws://127.0.0.1:{dead_port}/v1/realtime")
    server, _ = await start(nursery, model=dead)
    page = await open_page(nursery, server)
    error = await page.wait_for("error")
    assert "session failed" in error["message"]
    with trio.fail_after(5):
        while page.closed is None:  # noqa: ASYNC110
            await trio.sleep(0.01)
    assert page.closed.code == 1011
    (record,) = server.history
    assert record.outcome == "failed"
    assert record.error is not None
    # the model being unreachable is not a bug: one log line, no traceback
    (logged,) = [r for r in caplog.records if "failed" in r.getMessage()]
    assert logged.levelname == "ERROR"
    assert logged.exc_info is None
    assert "cannot open a WebSocket" in error["message"]


async def test_a_bug_is_logged_with_its_traceback_and_not_shown_to_the_visitor(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    def context_factory(tab: BrowserTab) -> Any:
        raise ValueError("internal detail: /srv/secret.cfg")

    server, _ = await start(nursery, context_factory=context_factory)
    page = await open_page(nursery, server)
    error = await page.wait_for("error")
    assert error["message"] == "session failed: an internal error (see the log)"
    with trio.fail_after(5):
        while page.closed is None:  # noqa: ASYNC110
            await trio.sleep(0.01)
    assert page.closed.code == 1011
    (logged,) = [r for r in caplog.records if "failed" in r.getMessage()]
    assert logged.exc_info is not None and logged.exc_info[0] is ValueError
    assert isinstance(server.history[0].error, ValueError)


# -- limits and bad input ---------------------------------------------------------------------
async def test_malformed_messages_are_reported_and_the_tab_goes_on(
    nursery: trio.Nursery,
) -> None:
    server, _ = await start(nursery)
    page = await open_page(nursery, server)
    await page.wait_for("ready")
    (tab,) = server.tabs.values()
    events = tab.channel.events()
    for bad in (b"not json", b'{"type": "dance"}', b'{"type": "played", "ms": -1}', b"[1]"):
        await page.ws.send_message(bad.decode())
    await page.ws.send_message(b"\x00\x00\x00")  # not PCM16
    reasons = []
    with trio.fail_after(2):
        async for event in events:
            assert isinstance(event, BrowserMalformed)
            reasons.append(event.reason)
            if len(reasons) == 5:
                break
    assert "not JSON" in reasons[0]
    assert "dance" in reasons[1]
    assert tab.channel.statistics().malformed == 5
    assert not tab.channel.ended


@pytest.mark.parametrize(
    ("flood", "code", "reason"),
    [
        ("big_text", 1009, "text message too big"),
        ("big_audio", 1009, "audio frame too big"),
        ("messages", 1008, "too many messages"),
        ("audio", 1008, "microphone audio faster than real time"),
    ],
)
async def test_limits_close_the_socket(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture, flood: str, code: int, reason: str
) -> None:
    # small buckets, so that even a slow machine sends faster than they allow
    options = BrowserOptions(
        max_frame_bytes=4800,
        max_text_bytes=1024,
        max_messages_per_second=50,
        message_burst=100,
        audio_burst_ms=500,
    )
    server, model_server = await start(nursery, options=options)
    page = await open_page(nursery, server)
    await page.wait_for("ready")
    conn = await model_server.connection()
    with trio.fail_after(5):
        try:
            if flood == "big_text":
                await page.ws.send_message('{"type": "interrupt", "x": "' + "a" * 2000 + '"}')
            elif flood == "big_audio":
                await page.ws.send_message(b"\x00" * 4802)
            elif flood == "messages":
                for _ in range(1000):
                    await page.ws.send_message('{"type": "played", "item_id": "x", "ms": 1}')
            else:  # 6 s of microphone audio at once
                for _ in range(60):
                    await page.ws.send_message(b"\x00" * 4800)
        except trio_websocket.ConnectionClosed:
            pass
        await conn.closed.wait()
        while page.closed is None or server.tabs:  # noqa: ASYNC110
            await trio.sleep(0.01)
    assert page.closed.code == code
    (record,) = server.history
    assert record.close_code == code
    assert f"closing the socket: {reason}" in caplog.text


async def test_a_frame_past_hypercorns_limit_is_refused_and_the_tab_ends(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    # hypercorn refuses a message past twice the channel's limits itself (1009) before the
    # channel sees it, and tells the application only that the socket went (1006): the tab is
    # then a dropped one, kept for resume_grace, and ends.
    options = BrowserOptions(max_frame_bytes=4800, resume_grace=2)
    server, model_server = await start(nursery, options=options)
    page = await open_page(nursery, server)
    await page.wait_for("ready")
    conn = await model_server.connection()
    with contextlib.suppress(trio_websocket.ConnectionClosed):
        await page.ws.send_message(b"\x00" * 100_000)
    with trio.fail_after(5):
        while page.closed is None:  # noqa: ASYNC110
            await trio.sleep(0.01)
        await conn.closed.wait()
        while server.tabs:  # noqa: ASYNC110
            await trio.sleep(0.01)
    assert page.closed.code == 1009
    (record,) = server.history
    assert record.outcome == "completed"
    assert record.statistics.frames_in == 0


async def test_a_tab_that_drops_mid_response_ends_after_the_grace(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    """The network goes (no close frame) while the agent is speaking: the session goes on
    detached, discards the audio, and ends when the page does not come back."""
    server, model_server = await start(nursery, options=BrowserOptions(resume_grace=3))
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    origin = [(b"Origin", f"http://127.0.0.1:{server.port}".encode())]
    async with trio.open_nursery() as ws_nursery:
        ws = await trio_websocket.wrap_client_stream(
            ws_nursery, stream, f"127.0.0.1:{server.port}", "/ws", extra_headers=origin
        )
        assert orjson.loads(await ws.get_message())["type"] == "ready"
        conn = await model_server.connection()
        await conn.expect("session.update")
        conn.start_response(RESPONSE_CREATE, Reply.of(AudioReply("A long answer.", ms=8000)))
        received = 0
        while received < 300 * BYTES_PER_MS:
            message = await ws.get_message()
            if isinstance(message, bytes):
                received += len(message)
        await stream.aclose()  # no close handshake: the connection is simply gone
        ws_nursery.cancel_scope.cancel()
    dropped_at = trio.current_time()
    (tab,) = server.tabs.values()
    with trio.fail_after(1):
        while not tab.channel.detached:  # noqa: ASYNC110
            await trio.sleep(0.01)
    assert not conn.closed.is_set()  # the session waits for the page
    with trio.fail_after(10):
        await conn.closed.wait()
        while server.tabs:  # noqa: ASYNC110
            await trio.sleep(0.01)
    assert 3 <= trio.current_time() - dropped_at < 3.5
    (record,) = server.history
    assert (record.outcome, record.close_code) == ("completed", 1006)
    assert record.statistics.sent_ms < 8000  # the rest was not sent to nobody
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


# -- the command --------------------------------------------------------------------------------
def test_web_command_arguments() -> None:
    args = web_parser().parse_args(["--port", "0", "--token", "t", "--allow-origin", "https://a"])
    assert (args.port, args.token, args.allow_origin) == (0, "t", ["https://a"])
    assert args.model_url is None


def test_web_command_refuses_a_remote_model_without_a_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main_web(["--model-url", "wss://api.openai.com/v1/realtime"]) == EXIT_CANNOT_START
    assert "OPENAI_API_KEY" in capsys.readouterr().err
    assert main_web(["--port", "not-a-port"]) == 2
    assert "not a port" in capsys.readouterr().err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_web_command_stops_on_a_signal_with_tabs_open(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """The real command in a subprocess: the page is served, two tabs are live, and Ctrl-C
    (SIGINT) or SIGTERM tells each tab, closes its socket with 1001 and exits 0."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect
    from websockets.typing import Origin

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("OPENAI_API_KEY", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "kernl_trio", "web", "--port", "0", "--token", "t0k"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        line = process.stdout.readline()
        match = re.search(r"open (http://127\.0\.0\.1:(\d+)/\?token=t0k)", line)
        assert match, line
        status, _, body = fetch(match[1])
        assert status == 200
        assert b"kernl_trio voice" in body
        origin = Origin(f"http://127.0.0.1:{match[2]}")
        with (
            connect(f"ws://127.0.0.1:{match[2]}/ws?token=t0k", origin=origin) as first,
            connect(f"ws://127.0.0.1:{match[2]}/ws?token=t0k", origin=origin) as second,
        ):
            for tab in (first, second):
                assert orjson.loads(tab.recv(timeout=10))["type"] == "ready"
            first.send(b"\x00\x00" * 480)  # a tab mid-conversation
            process.send_signal(signum)
            for tab in (first, second):
                seen = []
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        message = tab.recv(timeout=10)
                        if isinstance(message, str):
                            seen.append(orjson.loads(message)["type"])
                assert "closing" in seen
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert process.wait(timeout=15) == 0
        assert "closing the tabs and stopping" in process.stdout.read()
        assert process.stderr.read() == ""  # no traceback, nothing logged at WARNING
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


async def test_the_interrupt_button_interrupts_the_agent(nursery: trio.Nursery) -> None:
    server, model_server = await start(nursery)
    page = await open_page(nursery, server)
    await page.wait_for("ready")
    conn: ServerConnection = await model_server.connection()
    await conn.expect("session.update")
    conn.start_response(RESPONSE_CREATE, Reply.of(AudioReply("A long answer.", ms=3000)))
    await page.wait_audio(None, 100)
    assert page.item is not None
    await page.played(page.item, 40)
    await page.ws.send_message('{"type": "interrupt"}')
    await conn.expect("response.cancel")
    truncate = await conn.expect("conversation.item.truncate")
    assert truncate["audio_end_ms"] == 40
    assert (await page.wait_for("interrupted"))["source"] == "channel"
    await page.wait_for("clear")


def test_the_page_is_shown_tool_calls_starting_finishing_and_cancelled() -> None:
    started = display_message(ToolCall("call_1", "get_weather", '{"city": "Paris"}'))
    finished = display_message(ToolOutput("call_1", "get_weather", "{}"))
    failed = display_message(ToolOutput("call_2", "get_weather", "{}", error=True))
    cancelled = display_message(ToolCancelled("call_3", "get_weather"))
    assert started == {
        "type": "tool",
        "state": "running",
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
    }
    assert finished is not None and finished["state"] == "done"
    assert failed is not None and failed["state"] == "error"
    assert cancelled is not None and cancelled["state"] == "cancelled"
    assert display_message(TranscriptOutput("resp_1", "item_1", "Hi.")) == {
        "type": "transcript",
        "role": "assistant",
        "item_id": "item_1",
        "text": "Hi.",
        "final": True,
    }
