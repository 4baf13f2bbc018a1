"""The web pages in headless Chromium: the softphone places a call from a WAV (fake audio capture),
the agent page shows its live transcript and intent, and the agent takes the call over.

`voicebot serve` runs as a subprocess with the real pipeline where it is complete and provisioned,
otherwise with the scripted fake session (tests/fakes.py): the pages and protocols are the same.
Screenshots of the agent page go to test-artifacts/ (git-ignored).
Needs /usr/bin/chromium (scripts/setup_browser.sh) and the shared German speech.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fakes import ServeProcess

from voicebot.audio.io import read_audio, write_wav
from voicebot.store.sqlite import get_call

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CLIP = "clips/emodb_03a05Nd.flac"  # "Das schwarze Stück Papier befindet sich da oben neben dem Holzstück."


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    from test_server_e2e import _pipeline_missing  # the same check the end-to-end tests use

    tmp = tmp_path_factory.mktemp("browser")
    env: dict[str, str] = {}
    if _pipeline_missing():
        tests = str(Path(__file__).resolve().parent)
        env = {"VOICEBOT_SERVER__SESSION_FACTORY": "fakes:FakeSession",
               "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}
    srv = ServeProcess(tmp, env=env)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser(speech_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip("chromium missing: run scripts/setup_browser.sh")
    playwright_api = pytest.importorskip("playwright.sync_api")
    pcm, rate = read_audio(speech_dir / CLIP)
    # Chromium loops the file: one turn of speech, then enough silence to end the turn.
    wav = tmp_path_factory.mktemp("audio") / "caller.wav"
    write_wav(wav, np.concatenate([np.zeros(rate // 2, np.int16), pcm, np.zeros(rate * 3, np.int16)]), rate)
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}", "--autoplay-policy=no-user-gesture-required",
            "--disable-background-networking", "--disable-component-update", "--no-first-run",
        ])
        yield b
        b.close()


def test_softphone_call_watched_and_taken_over_by_an_agent(server: ServeProcess, browser: object) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1360, "height": 860}, locale="de-DE")  # type: ignore[attr-defined]
    agent = context.new_page()
    agent.goto(f"http://127.0.0.1:{server.port}/#token={server.token}&agent=Anna")
    agent.wait_for_selector("[data-testid=connection]:has-text('verbunden')", timeout=15000)

    phone = context.new_page()
    phone.goto(f"http://127.0.0.1:{server.port}/phone")
    phone.click("[data-testid=call]")
    phone.wait_for_selector("[data-testid=status]:has-text('verbunden')", timeout=20000)
    phone.wait_for_function("window.phone.callId !== null", timeout=20000)
    call_id = phone.evaluate("window.phone.callId")

    # The agent sees the call appear, its transcript (partials, then a final) and the intent.
    agent.wait_for_selector(f"[data-call-id='{call_id}']", timeout=15000)
    agent.click(f"[data-call-id='{call_id}']")
    agent.wait_for_selector("[data-testid=final]", timeout=90000)
    agent.wait_for_selector("[data-testid=intent-label]", timeout=60000)
    assert agent.evaluate("window.agentStats['transcript.partial'] || 0") > 0, "partials reach the agent page"
    final_text = agent.inner_text("[data-testid=final] .text")
    assert final_text.strip()
    assert agent.inner_text("[data-testid=call-state]") in ("Bot", "Übergabe")
    agent.screenshot(path=str(ARTIFACTS / "agent-live.png"), full_page=True)

    # The softphone heard the bot and shows the same words (unmasked: they are the caller's own).
    phone.wait_for_function("window.phone.botBytes > 8000", timeout=60000)
    same_words = "".join(r"\d" if ch == "*" else re.escape(ch) for ch in final_text.strip())
    assert re.search(same_words, phone.inner_text("[data-testid=transcript]"))

    agent.click("[data-testid=takeover]")
    agent.wait_for_selector("[data-testid=call-state]:has-text('Mitarbeiter')", timeout=10000)
    agent.wait_for_selector("[data-testid=release]", state="visible", timeout=5000)
    phone.wait_for_selector("text=Ein Mitarbeiter hat das Gespräch übernommen.", timeout=10000)
    agent.screenshot(path=str(ARTIFACTS / "agent-takeover.png"), full_page=True)

    phone.click("[data-testid=hangup]")
    phone.wait_for_selector("[data-testid=status]:has-text('aufgelegt')", timeout=15000)
    agent.wait_for_selector("[data-testid=call-state]:has-text('Beendet')", timeout=15000)
    context.close()
    record = get_call(server.store_path, call_id)
    assert record is not None and record["handled_by"] == "human" and record["agent_id"] == "Anna"
    assert record["status"] == "completed" and record["protocol"] == "voicebot.v1"


def test_agent_page_refuses_a_wrong_token(server: ServeProcess, browser: object) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(f"http://127.0.0.1:{server.port}/#token=not-the-token")
    page.wait_for_selector("#login:not([hidden])", timeout=10000)
    assert "Token ungültig" in page.inner_text("#login-error")
    page.fill("#token-input", server.token)
    page.click("#login-form button")
    page.wait_for_selector("[data-testid=connection]:has-text('verbunden')", timeout=10000)
    page.close()
