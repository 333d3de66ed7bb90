"""The dashboard in headless Chromium (driven by Playwright), against a real server and a real WebRTC call.

A second page publishes Chromium's fake microphone (real speech from tests/data/speech) over WHIP; the
manager's dashboard shows the call on the wall, its transcript live on the call page, plays it (listen-in,
measured in the page with a WebAudio analyser), rides out a network drop (a TCP proxy between the page
and the server is cut and restored) without losing a segment, and finds the stored call in the history.
Screenshots of each page are saved in artifacts/screenshots/ (ARTIFACTS_DIR overrides where).

The server runs in this process (tests/inprocess.py) so that its aiortc peer offers the loopback address.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
import wave
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from playwright.async_api import Browser, Page, async_playwright
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from media_server.store.records import CallRecord, ParticipantRecord
from media_server.store.store import Store
from tests.conftest import ROOT
from tests.inprocess import CHROMIUM_FLAGS, InProcessServer, inprocess_server, loopback_ice, require_chromium
from tests.speech import Program, normalise, program, tel8k

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(os.environ.get("ARTIFACTS_DIR", ROOT / "artifacts")) / "screenshots"
WRONG_KEY = "msk_" + "w" * 43


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    settings = {"ingest": {"idle_timeout_s": 6, "start_timeout_s": 10}}
    with loopback_ice(), inprocess_server(tmp_path_factory.mktemp("dashboard"), settings) as s:
        yield s


@pytest.fixture(scope="module")
def speech() -> Program:
    return program(tel8k()[:4], gap_s=2.0, lead_s=1.0)


@pytest.fixture
async def browser(speech: Program, tmp_path: Path) -> AsyncIterator[Browser]:
    chromium = require_chromium()
    mic = tmp_path / "mic.wav"
    with wave.open(str(mic), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(speech.sample_rate)
        w.writeframes(speech.pcm.astype("<i2").tobytes())
    flags = [f for f in CHROMIUM_FLAGS if f != "--headless"]  # Playwright says headless itself
    flags += [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic}%noloop",
    ]
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=chromium, args=flags, headless=True)
        yield b
        await b.close()


class Proxy:
    """A TCP proxy from a local port to the server, which can drop every connection and refuse new ones."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.up = True
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers -= {writer, up_writer}

    def drop(self) -> None:
        self.up = False
        for w in list(self.writers):
            w.transport.abort()  # as a network drop: no close handshake, no FIN
        self.writers.clear()

    def restore(self) -> None:
        self.up = True

    async def close(self) -> None:
        self.drop()
        if self.server is not None:
            self.server.close()


PUBLISH = """async ({whip, key}) => {
  const stream = await navigator.mediaDevices.getUserMedia(
    {audio: {echoCancellation: false, noiseSuppression: false, autoGainControl: false}});
  const pc = new RTCPeerConnection();
  pc.addTransceiver(stream.getAudioTracks()[0], {direction: "sendonly", streams: [stream]});
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(done => {
    if (pc.iceGatheringState === "complete") done();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && done();
    setTimeout(done, 3000);
  });
  const posted = await fetch(whip, {method: "POST", body: pc.localDescription.sdp,
    headers: {Authorization: "Bearer " + key, "Content-Type": "application/sdp"}});
  const answer = await posted.text();
  if (posted.status !== 201) return {status: posted.status, body: answer};
  await pc.setRemoteDescription({type: "answer", sdp: answer});
  window.whipSession = new URL(posted.headers.get("Location"), whip).href;
  window.whipPc = pc;
  return {status: 201};
}"""
HANG_UP = """async key => (await fetch(window.whipSession, {method: "DELETE",
  headers: {Authorization: "Bearer " + key}})).status"""


async def sign_in(page: Page, base: str, key: str) -> None:
    await page.goto(base + "/")
    await page.fill("#key", key)
    await page.click("#signin button[type=submit], #signin button")


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def stored(srv: InProcessServer, call_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=srv.url, timeout=20) as http:
        for _ in range(100):
            response = await http.get(f"/v1/calls/{call_id}", headers={"Authorization": f"Bearer {srv.keys['admin']}"})
            if response.status_code == 200 and response.json()["status"] != "live":  # (stored from its start)
                result: dict[str, Any] = response.json()
                return result
            await asyncio.sleep(0.2)
    raise AssertionError(f"call {call_id} was not stored: {response.status_code} {response.text}")


class Console:
    """Everything a page says is wrong: console errors and warnings, uncaught exceptions, HTTP answers >= 400.
    What it says while a test provokes it on purpose (``excused_while()``: a wrong key, a network drop) is kept
    apart."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.excused: list[str] = []
        self._excusing = False

    def watch(self, page: Page) -> Page:
        page.on(
            "console",
            lambda m: m.type in ("error", "warning") and self._note(f"{m.type}: {m.text} ({m.location.get('url')})"),
        )
        page.on("pageerror", lambda e: self._note(f"exception: {e}"))
        page.on("response", lambda r: r.status >= 400 and self._note(f"HTTP {r.status}: {r.request.method} {r.url}"))
        return page

    @contextlib.contextmanager
    def excused_while(self) -> Iterator[None]:
        self._excusing = True
        try:
            yield
        finally:
            self._excusing = False

    def _note(self, problem: str) -> None:
        (self.excused if self._excusing else self.problems).append(problem)


async def test_manager_watches_listens_and_finds_a_browser_call(
    srv: InProcessServer, browser: Browser, speech: Program
) -> None:
    proxy = Proxy(int(srv.url.rsplit(":", 1)[1]))
    base = f"http://127.0.0.1:{await proxy.start()}"
    call_id = f"web-{uuid.uuid4().hex[:12]}"
    try:
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        console = Console()  # normal use says nothing wrong (the wrong key and the drop are excused)
        dash = console.watch(await context.new_page())
        # A wrong key is refused at sign-in; the manager's key signs in to the (empty) wall.
        with console.excused_while():
            await sign_in(dash, base, WRONG_KEY)
            await dash.wait_for_selector("#signin-error:visible", timeout=10_000)
        await dash.fill("#key", srv.keys["manager"])
        await dash.click("#signin button")
        await dash.wait_for_selector("#wall-empty", timeout=10_000)

        # The rep's softphone (another page, straight to the server) publishes its microphone over WHIP.
        phone = await context.new_page()  # (the test's softphone, not the dashboard: its /health has no favicon)
        await phone.goto(srv.url + "/health")
        whip = f"{srv.url}/v1/ingest/whip?callId={call_id}&role=rep&repName=Dana%20Reyes&repConsent=granted"
        whip += "&customerName=Lee%20Chen&customerConsent=denied&keyterms=consider,selfish"
        # page.evaluate has no timeout of its own: a hang must fail here, named, not at pytest's 600 s.
        published = await asyncio.wait_for(phone.evaluate(PUBLISH, {"whip": whip, "key": srv.keys["rep"]}), 60)
        assert published["status"] == 201, published
        started = asyncio.get_running_loop().time()

        # The wall shows the call; its page shows the transcript as it is spoken.
        row = dash.locator(f'tr[data-call-id="{call_id}"]')
        await row.wait_for(timeout=10_000)
        assert "Dana Reyes" in await row.inner_text()
        await row.click()
        await dash.wait_for_url(f"**#/calls/{call_id}", timeout=5_000)
        await dash.wait_for_selector("#transcript li.final", timeout=30_000)
        first_final = asyncio.get_running_loop().time() - started
        badges = await dash.locator(".badge").all_inner_texts()
        assert any("denied" in b.lower() for b in badges) and any("granted" in b.lower() for b in badges), badges

        # Listen in: the page plays the call and measures its level.
        await dash.select_option("#listen-channel", "mixed")
        await dash.click("#listen")
        await dash.wait_for_function("window.msListen && window.msListen.state === 'listening'", timeout=15_000)

        # A network drop mid-call: every connection through the proxy is cut, and new ones refused, for 3 s.
        await asyncio.sleep(2.0)
        with console.excused_while():
            proxy.drop()
            await dash.wait_for_function("document.querySelector('#conn').classList.contains('down')", timeout=10_000)
            await asyncio.sleep(3.0)
            proxy.restore()
            await dash.wait_for_function("document.querySelector('#conn').classList.contains('live')", timeout=20_000)

        # The wall while the call runs, then back to the call page until the speech has been said.
        await dash.goto(f"{base}/#/")
        await dash.locator(f'tr[data-call-id="{call_id}"]').wait_for(timeout=10_000)
        await shot(dash, "wall")
        await dash.goto(f"{base}/#/calls/{call_id}")
        await dash.wait_for_selector("#transcript li.final", timeout=30_000)
        await dash.click("#listen")
        await dash.wait_for_function("window.msListen && window.msListen.state === 'listening'", timeout=15_000)
        remaining = speech.duration + 1.0 - (asyncio.get_running_loop().time() - started)
        await asyncio.sleep(max(remaining, 0.0))
        await shot(dash, "call")
        listen: dict[str, Any] = await asyncio.wait_for(dash.evaluate("window.msListen"), 30)
        assert (await asyncio.wait_for(phone.evaluate(HANG_UP, srv.keys["rep"]), 60)) == 200
        await dash.wait_for_selector("text=Call ended", timeout=30_000)

        # Nothing was lost to the drop: the page has every final segment the server stored, once.
        call = await stored(srv, call_id)
        # The questions counted are the question marks Whisper wrote: "Had he married a more amiable woman he
        # might..." (a final cut at a pause, without its full stop) is no question.
        asked = sum(s["text"].count("?") for s in call["transcript"])
        assert sum(call["metrics"]["questions"].values()) == asked, (call["metrics"], call["transcript"])
        page_finals = await dash.locator("#transcript li.final").all_inner_texts()
        assert len(page_finals) == len(call["transcript"]), (page_finals, call["transcript"])
        for segment, shown in zip(call["transcript"], page_finals, strict=True):
            assert normalise(segment["text"]) in normalise(shown)

        # The listener heard the caller: loud while the caller speaks, near silence in the pauses.
        levels = np.array([p["level"] for p in listen["levels"]])
        loud, quiet = float(np.percentile(levels, 90)), float(np.percentile(levels, 10))
        print(
            f"dashboard: first final on the call page {first_final:.1f} s after publishing; "
            f"listen-in level p90 {loud:.4f} vs p10 {quiet:.5f} over {len(levels)} readings"
        )
        assert loud > 0.01 and loud > 10 * max(quiet, 1e-6), (loud, quiet)
        async with httpx.AsyncClient(base_url=srv.url, timeout=20) as http:
            audit = await http.get(
                "/v1/audit/listens",
                params={"callId": call_id},
                headers={"Authorization": f"Bearer {srv.keys['admin']}"},
            )
        entries = audit.json()["listens"]
        assert len(entries) == 2 and all(e["role"] == "manager" and e["endedAt"] for e in entries), entries

        # The keyterms said were hits, highlighted on the page and kept with the call.
        marked = {m.lower() for m in await dash.locator("#transcript mark.kw").all_inner_texts()}
        assert marked and marked <= {"consider", "selfish"}, marked
        assert set(call["keywords"]) == marked, call["keywords"]

        # The history finds it by a word that was said and by its keyword, and shows its detail page.
        word = max(normalise(call["transcript"][0]["text"]).split(), key=len)
        await dash.goto(f"{base}/#/history?q={word}")
        hit = dash.locator(f'#history tr[data-call-id="{call_id}"]')
        await hit.wait_for(timeout=10_000)
        assert word in (await hit.inner_text()).lower()
        await shot(dash, "history")
        await dash.goto(f"{base}/#/history?keyword={sorted(marked)[0]}")
        await dash.locator(f'#history tr[data-call-id="{call_id}"]').wait_for(timeout=10_000)
        await hit.click()
        await dash.wait_for_selector("#timeline .seg, #timeline [title]", timeout=10_000)
        await dash.wait_for_selector("#stats", timeout=5_000)
        await shot(dash, "detail")
        await context.close()
        # Normal use said nothing wrong: no console error or warning, no failed request, no uncaught exception.
        assert console.problems == [], (console.problems, console.excused)
        assert console.excused, "the wrong key and the drop went unnoticed by the watch"
    finally:
        await proxy.close()


async def test_a_wrong_key_is_refused_everywhere_and_a_rep_cannot_listen(
    srv: InProcessServer, browser: Browser
) -> None:
    async with httpx.AsyncClient(base_url=srv.url, timeout=20) as http:
        wrong = {"Authorization": f"Bearer {WRONG_KEY}"}
        for path in ("/v1/me", "/v1/live", "/v1/calls", "/v1/audit/listens"):
            assert (await http.get(path, headers=wrong)).status_code == 401, path
        sdp = {"Content-Type": "application/sdp"}
        assert (await http.post("/v1/ingest/whip", content="v=0\r\n", headers={**wrong, **sdp})).status_code == 401
        assert (await http.post("/v1/calls/x/listen", content="v=0\r\n", headers={**wrong, **sdp})).status_code == 401
        me = (await http.get("/v1/me", headers={"Authorization": f"Bearer {srv.keys['rep']}"})).json()
        assert me["role"] == "rep" and me["can"]["listen"] is False and me["can"]["read"] is True
        assert (await http.get("/", headers=wrong)).status_code == 200  # the page itself holds no data
    for path in ("/v1/events", "/v1/calls/x/events"):
        async with connect(f"{srv.ws_url}{path}?token={WRONG_KEY}") as ws:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            assert ws.close_code == 1008

    # A rep signed in to the dashboard sees a live call but cannot listen to it.
    call_id = f"rep-{uuid.uuid4().hex[:12]}"
    async with connect(f"{srv.ws_url}/v1/ingest/l16") as ingest:
        await ingest.send(
            json.dumps(
                {
                    "callSid": call_id,
                    "sampleRate": 16000,
                    "speaker": "rep",
                    "repConsent": "granted",
                    "token": srv.keys["ingest"],
                }
            )
        )
        await ingest.send(np.zeros(3200, dtype="<i2").tobytes())
        context = await browser.new_context()
        page = await context.new_page()
        await sign_in(page, srv.url, srv.keys["rep"])
        await page.locator(f'tr[data-call-id="{call_id}"]').click(timeout=10_000)
        await page.wait_for_selector("#listen", timeout=5_000)
        assert await page.locator("#listen").is_disabled()
        await context.close()
        await ingest.send(json.dumps({"event": "stop"}))


# -- the team page, names, explanations, a quiet console ----------------------------------------------------


async def stored_history(srv: InProcessServer, reps: dict[str, str]) -> None:
    """Calls of the last five weeks, stored as an import would (their daily aggregates with them): the second
    store on the server's database is this test's own (the server's runs on the server's event loop)."""
    store = Store(srv.app.state.services.store.url)
    await store.open()
    try:
        now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
        plan = [  # (days ago, rep id, talk ratio, minutes, disposition, cues, tracker hits)
            (33, "u-dana", 0.72, 9, "no_decision", {"talk_ratio": 2, "monologue": 1}, {"Zorvexa": 1}),
            (30, "u-sam", 0.58, 6, "meeting_booked", {"no_question": 1}, {"pricing": 2}),
            (26, "u-dana", 0.66, 12, "follow_up", {"talk_ratio": 1}, {"Zorvexa": 2, "pricing": 1}),
            (23, "u-sam", 0.51, 8, "meeting_booked", {}, {"pricing": 1}),
            (19, "u-dana", 0.61, 7, "meeting_booked", {"monologue": 1}, {}),
            (16, "u-sam", 0.47, 11, "no_decision", {"filler": 1}, {"next steps": 1}),
            (12, "u-dana", 0.55, 10, "meeting_booked", {"talk_ratio": 1}, {"Zorvexa": 1, "next steps": 1}),
            (9, "u-sam", 0.44, 5, "follow_up", {}, {"pricing": 1}),
            (5, "u-dana", 0.49, 14, "meeting_booked", {}, {"next steps": 2}),
            (2, "u-sam", 0.42, 9, "meeting_booked", {"silence": 1}, {"Zorvexa": 1}),
            (2, "u-dana", 0.45, 6, "follow_up", {}, {"pricing": 1}),
        ]
        for n, (ago, rep, ratio, minutes, disposition, cues, hits) in enumerate(plan):
            start = now - timedelta(days=ago)
            metrics = {
                "talkTime": {"rep": ratio * minutes * 50, "customer": (1 - ratio) * minutes * 50},
                "talkRatio": ratio,
                "longestMonologue": 40 + 5 * n,
                "patience": 0.6 + 0.1 * n,
                "questions": {"rep": 3 + n % 4, "customer": 1},
                "trackerHits": hits,
                "cues": cues,
            }
            customer = ParticipantRecord("customer", "granted", True, phone=f"+1415555{n:04d}")
            await store.save_call(
                CallRecord(
                    id=f"past-{uuid.uuid4().hex[:8]}",
                    team="acme",
                    source="twilio",
                    status="completed",
                    end_reason="stop",
                    started_at=start,
                    ended_at=start + timedelta(minutes=minutes),
                    participants=[ParticipantRecord("rep", "granted", True, id=rep, name=reps[rep]), customer],
                    metrics=metrics,
                    disposition=disposition,
                )
            )
    finally:
        await store.close()


async def stream_stereo_call(srv: InProcessServer, call_id: str, metadata: dict[str, Any]) -> None:
    """A stereo L16 call at real-time pace: the rep says a statement, the customer a long one that opens like a
    question ("Had he married a more amiable woman, he might..."), the rep answers. Nobody asks anything."""
    utterances = tel8k()
    rate = utterances[0].sample_rate
    turns = [("rep", 0.5, utterances[1]), ("customer", 4.0, utterances[3]), ("rep", 10.6, utterances[4])]
    length = int(rate * (max(at + u.duration for _, at, u in turns) + 1.5))
    stereo = np.zeros((length, 2), dtype="<i2")
    for who, at, u in turns:
        start = int(at * rate)
        stereo[start : start + len(u.pcm), 0 if who == "rep" else 1] = u.pcm
    async with connect(f"{srv.ws_url}/v1/ingest/l16") as ingest:
        hello = {"callSid": call_id, "sampleRate": rate, "mixType": "stereo", "metadata": metadata}
        await ingest.send(json.dumps({**hello, "metadata": {**metadata, "token": srv.keys["ingest"]}}))
        step = rate // 10  # 100 ms
        for at in range(0, length, step):
            await ingest.send(stereo[at : at + step].tobytes())
            await asyncio.sleep(0.1)
        await ingest.send(json.dumps({"event": "stop"}))


async def test_team_page_charts_names_explanations_and_a_quiet_console(srv: InProcessServer, browser: Browser) -> None:
    admin = {"Authorization": f"Bearer {srv.keys['admin']}"}
    async with httpx.AsyncClient(base_url=srv.url, timeout=20, headers=admin) as http:
        made = await http.post("/v1/keys", json={"role": "rep", "label": "u-dana"})  # a rep key names its rep
        assert made.status_code == 201, made.text
        dana_key = made.json()["key"]
    await stored_history(srv, {"u-dana": "Dana Reyes", "u-sam": ""})
    console = Console()
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        dash = console.watch(await context.new_page())
        await sign_in(dash, srv.url, srv.keys["manager"])
        await dash.wait_for_selector("#wall-empty, #wall:not([hidden])", timeout=10_000)
        # The wall has no stream pill trouble: "live" once its event stream is open; History has no pill at all.
        await dash.wait_for_function("document.querySelector('#conn').classList.contains('live')", timeout=10_000)

        # A live call whose metadata names nobody: the rep by id, the customer by phone number, never "—".
        call_id = f"names-{uuid.uuid4().hex[:10]}"
        metadata = {
            "repId": "u-dana",
            "customerPhone": "+14155550199",
            "repConsent": "granted",
            "customerConsent": "granted",
        }
        streaming = asyncio.create_task(stream_stereo_call(srv, call_id, metadata))
        row = dash.locator(f'#wall tr[data-call-id="{call_id}"]')
        await row.wait_for(timeout=15_000)
        assert (await row.locator("td.rep").inner_text(), await row.locator("td.customer").inner_text()) == (
            "u-dana",
            "+14155550199",
        )
        assert await dash.locator("#wall th[title]", has_text="Talk ratio").count() == 1
        # Its page: empty Cues and Keywords panels say what comes there and where trackers are set up.
        await row.click()
        await dash.wait_for_selector("#transcript li.final", timeout=30_000)
        cues_help = await dash.locator("#cues-empty").inner_text()
        hits_help = await dash.locator("#hits-empty").inner_text()
        assert "team's configuration" in cues_help and "No trackers are set up" in hits_help, (cues_help, hits_help)
        assert await dash.locator('#hits-empty a[href="#/team?section=config"]').count() == 1
        await shot(dash, "call-panels")
        await asyncio.wait_for(streaming, 60)
        await dash.wait_for_selector("text=Call ended", timeout=30_000)

        # The stored call: every metric explained, and no question counted where none was asked.
        call = await stored(srv, call_id)
        assert not any("?" in s["text"] for s in call["transcript"]), call["transcript"]
        await dash.goto(f"{srv.url}/#/history/{call_id}")
        await dash.wait_for_selector("#stats", timeout=10_000)
        explained = await dash.eval_on_selector_all(
            ".facts dt[data-metric]",
            "dts => dts.map(dt => [dt.dataset.metric, dt.querySelector('[title]').title,"
            " dt.nextElementSibling.innerText])",
        )
        metrics = {name: (title, shown) for name, title, shown in explained}
        assert {"talkRatio", "longestMonologue", "patience", "interactivity", "questions"} <= set(metrics), metrics
        for name, (title, shown) in metrics.items():
            assert len(title) > 30 and title in shown, (name, title, shown)  # the tooltip, and the line under it
        assert metrics["questions"][1].startswith("None asked"), metrics["questions"]
        assert "switches" in metrics["interactivity"][1] and "pause" in metrics["patience"][0]
        await shot(dash, "detail-explained")

        # History: names or numbers for everyone, and no pill that reads like an outage.
        await dash.goto(f"{srv.url}/#/history")
        await dash.wait_for_selector(f'#history tr[data-call-id="{call_id}"]', timeout=10_000)
        assert await dash.locator("#conn").is_hidden()
        cells = await dash.locator("#history td.rep, #history td.customer").all_inner_texts()
        assert cells and "—" not in cells and "" not in cells, cells
        assert {"Dana Reyes", "u-sam", "+14155550199"} <= set(cells), cells

        # The team page: charts of the stored calls' daily aggregates, as the API gives them.
        async with httpx.AsyncClient(base_url=srv.url, timeout=20, headers=admin) as http:
            today = datetime.now(UTC).date()
            window = {"from": (today - timedelta(days=55)).isoformat(), "to": today.isoformat()}
            team = (await http.get("/v1/reps/activity", params=window)).json()
        trackers = [
            {"name": "Zorvexa", "category": "competitors", "phrases": ["Zorvexa"]},
            {"name": "pricing", "category": "pricing", "phrases": ["price", "discount"]},
            {"name": "next steps", "category": "next_steps", "phrases": ["next steps"]},
        ]
        async with httpx.AsyncClient(base_url=srv.url, timeout=20, headers=admin) as http:
            assert (await http.put("/v1/team/config", json={"trackers": trackers})).status_code == 200
        await dash.goto(f"{srv.url}/#/team")
        await dash.wait_for_selector("#chart-calls svg rect.column", timeout=10_000)
        bars = await dash.eval_on_selector_all(
            "#chart-calls rect.column", "rs => rs.map(r => [r.dataset.label, Number(r.dataset.value)])"
        )
        assert dict(bars) == {d["day"]: d["calls"] for d in team["days"] if d["calls"]}
        assert sum(n for _, n in bars) == team["team"]["calls"] >= 12
        points = await dash.eval_on_selector_all(
            "#chart-talk circle.point",
            "cs => cs.map(c => [c.dataset.series, c.dataset.label, Number(c.dataset.value)])",
        )
        expected = {
            (r["rep"] or "(no rep)", w["week"], r["averageTalkRatio"])
            for w in team["weeks"]
            for r in w["reps"]
            if r["averageTalkRatio"] is not None
        }
        assert set(map(tuple, points)) == expected and len(expected) >= 8, (points, expected)
        assert set(await dash.locator("#chart-talk .legend li").all_inner_texts()) >= {"u-dana", "u-sam"}
        for chart, field in (("cues", "cues"), ("trackers", "trackerHits"), ("dispositions", "dispositions")):
            shown = await dash.eval_on_selector_all(
                f"#chart-{chart} rect.column", "rs => rs.map(r => [r.dataset.series, Number(r.dataset.value)])"
            )
            totals: dict[str, int] = {}
            for series, n in shown:
                totals[series] = totals.get(series, 0) + n
            assert totals == team["team"][field], (chart, totals, team["team"][field])
        assert await dash.locator("#team-reps tr[data-rep]").count() == len(team["reps"])
        assert await dash.locator("#config-trackers li").count() == 3  # the configuration the charts follow
        await shot(dash, "team")

        # A rep's key: their own figures only (the server gives no other), named as theirs.
        rep_page = console.watch(await context.new_page())
        await rep_page.goto(f"{srv.url}/")
        await rep_page.evaluate("localStorage.clear()")
        await sign_in(rep_page, srv.url, dana_key)
        await rep_page.wait_for_selector("#wall-empty, #wall:not([hidden])", timeout=10_000)
        await rep_page.goto(f"{srv.url}/#/team")
        await rep_page.wait_for_selector("#team-scope", timeout=10_000)
        assert "u-dana" in await rep_page.locator("#team-scope").inner_text()
        assert await rep_page.locator("#team-reps tr[data-rep]").evaluate_all("rs => rs.map(r => r.dataset.rep)") == [
            "u-dana"
        ]
        series = await rep_page.eval_on_selector_all("#chart-talk circle.point", "cs => cs.map(c => c.dataset.series)")
        assert series and set(series) == {"u-dana"}, series
        own_calls = sum(
            int(v)
            for v in await rep_page.eval_on_selector_all(
                "#chart-calls rect.column", "rs => rs.map(r => r.dataset.value)"
            )
        )
        dana = next(r for r in team["reps"] if r["rep"] == "u-dana")
        assert own_calls == dana["calls"] < team["team"]["calls"]
        await shot(rep_page, "team-rep")
        await context.close()
    finally:
        with contextlib.suppress(Exception):
            await context.close()
    # Normal use said nothing wrong: no console error or warning, no failed request (no routine 404 or 409).
    assert console.problems == [], console.problems
