"""The browser channel in a real headless Chromium, with a fake microphone fed from a WAV file.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and selenium
(the ``test`` extra); without them these tests skip. They are marked ``browser`` and left out
of the default run (``-m "not browser"`` in pyproject.toml); ``pytest -m browser`` runs them.

The fake microphone plays the WAV once (``%noloop``): the user asks about the weather in Paris,
talks over the answer while its weather lookup runs ("And what about Rome?"), and that second
question is answered after its lookup finishes. The embedded realtime server detects the speech,
hears the transcripts it is told, and answers with synthesized speech.
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from kernl_trio.audio import silence
from kernl_trio.channels.browser import BrowserPlayed, BrowserServer, BrowserTab, serve_browser
from kernl_trio.channels.wav import write_wav
from kernl_trio.demo.agent import weather_agent
from kernl_trio.demo.script import SESSION_CONFIG, USER_VOICE, server_script
from kernl_trio.protocol import PCM16_24K, ResponseInterrupted, SpeechStarted
from kernl_trio.providers.openai import OpenAIRealtimeModel
from kernl_trio.session import SessionEvent
from kernl_trio.testing.embedded import EmbeddedServer
from kernl_trio.testing.rules import synthesize_speech

pytestmark = pytest.mark.browser

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
CHROMEDRIVER = shutil.which("chromedriver")
FRAME_MS = 20  # the bound: one 20 ms frame (the page reports every 10 ms)
SCREENSHOT = os.environ.get("KERNL_TRIO_SCREENSHOT")  # where to save the page (docs/)


def _require_browser() -> None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[test]')")
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("chromium and chromedriver are not installed (apt-get install chromium "
                    "chromium-driver)")  # fmt: skip


FIRST, SECOND = "What's the weather in Paris?", "And what about Rome?"


def user_wav(path: Path) -> Path:
    """The user's side: a question, a pause for the answer, then talking over it."""
    fmt = PCM16_24K
    audio = (
        silence(fmt, 500)
        + synthesize_speech(FIRST, fmt, USER_VOICE)
        + silence(fmt, 1700)
        + synthesize_speech(SECOND, fmt, USER_VOICE)
        + silence(fmt, 2500)
    )
    write_wav(path, audio, fmt)
    return path


@pytest.fixture
def chromium() -> Iterator[Callable[[Path], Any]]:
    """A factory: ``chromium(wav)`` launches headless Chromium whose microphone plays ``wav``."""
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    drivers: list[Any] = []
    profiles: list[tempfile.TemporaryDirectory[str]] = []

    def launch(wav: Path) -> Any:
        profile = tempfile.TemporaryDirectory(prefix="kernl-chromium-")
        profiles.append(profile)
        options = Options()
        options.binary_location = CHROMIUM or ""
        for flag in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile.name}",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}%noloop",
            "--autoplay-policy=no-user-gesture-required",
            "--window-size=900,620",
        ):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER or ""))
        drivers.append(driver)
        return driver

    yield launch
    for driver in drivers:
        driver.quit()
    for profile in profiles:
        profile.cleanup()


async def _in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Selenium blocks: call it off the trio thread, so the servers keep running."""
    return await trio.to_thread.run_sync(fn, *args)


async def _until(what: str, check: Callable[[], Any], limit: float = 10.0) -> Any:
    """Poll ``check`` (a Selenium call, off-thread) until it returns something truthy."""
    with trio.move_on_after(limit):
        while True:
            value = await _in_thread(check)
            if value:
                return value
            await trio.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


async def _eventually(what: str, check: Callable[[], Any], limit: float = 5.0) -> None:
    """Poll ``check`` (server state, on the trio thread) until it is true."""
    with trio.move_on_after(limit):
        while True:
            if check():
                return
            await trio.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


def _kernl_tasks() -> set[trio.lowlevel.Task]:
    """The live tasks running kernl_trio code (a tab's channel, session, model connection)."""
    found: set[trio.lowlevel.Task] = set()

    def walk(task: trio.lowlevel.Task) -> None:
        code = getattr(task.coro, "cr_code", None)
        if code is not None and "kernl_trio" in code.co_filename:
            found.add(task)
        for nursery in task.child_nurseries:
            for child in nursery.child_tasks:
                walk(child)

    root = trio.lowlevel.current_root_task()
    assert root is not None
    walk(root)
    return found


async def test_page_self_test_in_chromium(
    chromium: Any, nursery: trio.Nursery, tmp_path: Path
) -> None:
    """The page's JavaScript test of the ring buffer and the played-position accounting."""
    driver = chromium(user_wav(tmp_path / "user.wav"))
    server: BrowserServer = await nursery.start(partial(serve_browser, weather_agent))
    await _in_thread(driver.get, f"http://127.0.0.1:{server.port}/selftest.html")
    result = await _until(
        "the self-test",
        lambda: driver.execute_script(
            "return window.selftest && window.selftest.done && window.selftest"
        ),
    )
    assert result["failures"] == []
    assert result["failed"] == 0
    assert result["passed"] >= 20


async def test_conversation_in_chromium(
    chromium: Any, nursery: trio.Nursery, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    driver = chromium(user_wav(tmp_path / "user.wav"))
    model_server = EmbeddedServer(server_script(), transcripts=[FIRST, SECOND])
    await nursery.start(model_server.run)
    events: list[SessionEvent] = []

    reports: list[BrowserPlayed] = []  # as the channel received them (trio time)
    interrupts: list[float] = []  # when the session called the channel's interrupt()

    async def record(tab: BrowserTab) -> None:
        assert tab.session is not None
        interrupt = tab.channel.interrupt

        def spy() -> None:
            interrupts.append(trio.current_time())
            interrupt()

        tab.channel.interrupt = spy  # type: ignore[method-assign]

        async def channel_events() -> None:
            async with tab.channel.events(buffer=100_000) as stream:
                async for event in stream:
                    if isinstance(event, BrowserPlayed):
                        reports.append(event)

        async with trio.open_nursery() as inner:
            inner.start_soon(channel_events)
            async with tab.session.events() as stream:
                async for event in stream:
                    events.append(event)

    server: BrowserServer = await nursery.start(
        partial(
            serve_browser,
            weather_agent,
            model=OpenAIRealtimeModel(base_url=model_server.url),
            session_config=SESSION_CONFIG,
            on_tab=record,
            token="s3cret",
        )
    )
    before = _kernl_tasks()

    # A tab of its own, so closing it leaves the browser running.
    await _in_thread(driver.switch_to.new_window, "tab")
    await _in_thread(driver.get, server.url)
    await _in_thread(lambda: driver.find_element(By.ID, "connect").click())
    state = "return window.kernl"
    await _until("the page to connect", lambda: driver.execute_script(state)["status"] == "live")
    # the connection status and the button, as the user sees them
    assert (await _in_thread(lambda: driver.find_element(By.ID, "status").text)) == "live"
    assert (await _in_thread(lambda: driver.find_element(By.ID, "connect").text)) == "Disconnect"
    assert len(server.tabs) == 1
    (tab,) = server.tabs.values()

    # The user's speech is detected, transcribed and answered; the transcript is on the page.
    def bubbles(role: str) -> list[str]:
        return [li.text for li in driver.find_elements(By.CSS_SELECTOR, f"#transcript li.{role}")]

    def tools(state: str) -> list[str]:
        return [li.text for li in driver.find_elements(By.CSS_SELECTOR, f"#tools li.{state}")]

    await _until("the user's transcript", lambda: FIRST in bubbles("user"))
    await _until(
        "the assistant's answer",
        lambda: any("Let me check the weather in Paris" in text for text in bubbles("assistant")),
    )
    assert any(isinstance(e, SpeechStarted) for e in events)
    # the level meter moved with the fake microphone's speech
    page = await _in_thread(driver.execute_script, state)
    assert page["peakLevel"] > 0.01 and page["meterMax"] > 10, page["peakLevel"]

    # The user talks over the answer: the page flushes, the truncate carries its position.
    await _until("the barge-in", lambda: driver.execute_script(state)["flushes"])
    connection = await model_server.connection()
    await _eventually("the truncate", lambda: connection.of_type("conversation.item.truncate"))
    truncate = connection.of_type("conversation.item.truncate")[0]
    item = truncate["item_id"]
    page = await _in_thread(driver.execute_script, state)
    flushed = page["flushes"][0]["played"][item]  # where the page's playback stopped
    reported = [r["ms"] for r in page["reports"] if r["item"] == item]
    interrupted = next(e for e in events if isinstance(e, ResponseInterrupted))
    assert interrupted.item_id == item
    # The truncate carries exactly the last position the page had reported when the session
    # interrupted (the channel's played_ms is nothing else) ...
    heard = [r.ms for r in reports if r.item_id == item and r.at <= interrupts[0]]
    assert truncate["audio_end_ms"] == interrupted.played_ms == math.floor(heard[-1])
    # ... and the page reports often enough to be within one 20 ms frame of its playback:
    # every 10 ms of it, at the render quantum that crosses the mark.
    gaps = [b - a for a, b in itertools.pairwise([0.0, *reported])]
    assert max(gaps) <= FRAME_MS, gaps
    # The clear stopped the page's playback: nothing of the item played after it. Where it
    # stopped is the truncate plus what played while the last report and the clear were in
    # flight (a few ms on an idle machine, tens under load).
    assert max(reported) <= flushed
    assert 0 <= flushed - truncate["audio_end_ms"] <= 5 * FRAME_MS
    assert tab.channel.cleared[0].played[item] == flushed
    interrupted_bubbles = await _in_thread(
        driver.find_elements, By.CSS_SELECTOR, "#transcript li.assistant.interrupted"
    )
    assert len(interrupted_bubbles) == 1

    # The second utterance is answered too (after the barge-in).
    # The lookup the barge-in cancelled shows as cancelled; the second question's lookup
    # runs, finishes, and its answer follows.
    await _until("the cancelled lookup", lambda: tools("cancelled") == ["get_weather cancelled"])
    await _until("the second user transcript", lambda: SECOND in bubbles("user"))
    await _until("the second lookup", lambda: tools("done") == ["get_weather done"])
    await _until(
        "the answer about Rome",
        lambda: any("Right now in Rome" in text for text in bubbles("assistant")),
    )
    messages = (await _in_thread(driver.execute_script, state))["messages"]
    shown = [m["state"] for m in messages if m["type"] == "tool"]
    assert shown == ["running", "cancelled", "running", "done"]
    if SCREENSHOT:
        await _in_thread(driver.save_screenshot, SCREENSHOT)

    # The connection drops (no close from the page's side): the page reconnects by itself
    # and resumes the same session on the same model connection.
    first_session = page["sessionId"]
    await _in_thread(driver.execute_script, "window.kernlDropSocket()")
    await _until(
        "the page to reconnect",
        lambda: (
            len(driver.execute_script(state)["sessions"]) == 2
            and driver.execute_script(state)["status"] == "live"
        ),
    )
    page = await _in_thread(driver.execute_script, state)
    assert page["sessions"] == [first_session, first_session]
    assert server.tabs == {tab.id: tab}
    assert tab.channel.statistics().resumes == 1
    assert not connection.closed.is_set()

    # Closing the tab ends its session at once (the page says bye): the model connection
    # closes, nothing is left running.
    await _in_thread(driver.close)
    await _eventually("the tab to end", lambda: not server.tabs)
    with trio.fail_after(5):
        await connection.closed.wait()
    assert [r.outcome for r in server.history] == ["completed"]
    assert len(model_server.connections) == 1
    assert server.history[-1].statistics.malformed == 0
    assert server.statistics().active == 0
    await _eventually("the tab's tasks to end", lambda: not _kernl_tasks() - before)
