"""The dashboard in real headless Chromium, against a daemon that processed real files."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any

from playwright.sync_api import expect

from ingestd.testing import drop
from tests.dashboard.conftest import TOKEN, Site

MINUTE = 60_000  # Playwright timeouts are in milliseconds
CLIP = {"x": 0, "y": 0, "width": 1000, "height": 1100}  # the README's recording picture


def api(site: Site, path: str, method: str = "GET", **headers: str) -> tuple[int, Any]:
    request = urllib.request.Request(site.url + path, method=method, headers=headers)
    if method == "POST":
        request.data = b""
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def sign_in(page: Any, site: Site, token: str = TOKEN) -> None:
    page.goto(f"{site.url}/login")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")


class TestPages:
    def test_overview_shows_counts_slots_watches_and_sinks(self, site: Site, page, screenshot):
        page.goto(site.url + "/")
        expect(page.locator("h1")).to_have_text("Overview")
        states = page.locator("table.states")
        expect(states.locator("tr", has_text="done")).to_contain_text("3")
        expect(states.locator("tr", has_text="failed")).to_contain_text("1")
        expect(states.locator("tr", has_text="rejected")).to_contain_text("1")
        expect(page.locator(".card", has_text="job slots in use")).to_contain_text("0 / 5")
        expect(page.locator("tr", has_text=str(site.env.inbox))).to_contain_text("watching")
        expect(page.locator("tr", has_text="files")).to_contain_text("3")  # 3 delivered
        expect(page.locator(".meta")).to_contain_text("ingestd ")
        # a state is a word and a colour: the badge's colour differs by state
        colours = {
            state: page.locator(f"table.states .state-{state}").evaluate(
                "e => getComputedStyle(e).color"
            )
            for state in ("done", "failed", "rejected")
        }
        assert len(set(colours.values())) == 3, colours
        screenshot(page, "overview")

    def test_history_pages_filters_and_searches(self, site: Site, page, screenshot):
        page.goto(site.url + "/recordings")
        rows = page.locator("table.list tbody tr")
        expect(rows).to_have_count(5)
        # newest first
        ids = [int(i) for i in rows.evaluate_all("rs => rs.map(r => r.dataset.id)")]
        assert ids == sorted(ids, reverse=True)
        screenshot(page, "history")

        page.select_option("select[name=state]", "failed")
        page.click("form.filters button")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("flaky-call.wav")
        expect(rows.first.locator(".error")).to_contain_text("failed")

        page.goto(site.url + "/recordings?q=board-meeting")
        expect(rows).to_have_count(2)
        page.goto(site.url + "/recordings?q=not+media")  # the error text is searched too
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("garbage.wav")
        page.goto(site.url + "/recordings?from=2000-01-01&to=2000-01-02")
        expect(page.locator(".empty")).to_contain_text("No recording matches")

    def test_a_done_recording_shows_timeline_decisions_deliveries_and_transcript(
        self, site: Site, page, screenshot
    ):
        rid = site.ids["weekly-sync.wav"]
        page.goto(f"{site.url}/recordings/{rid}")
        expect(page.locator("h1")).to_contain_text("done")
        timeline = page.locator("ol.timeline li")
        expect(timeline.first).to_contain_text("discovered")
        expect(timeline.last.locator(".state")).to_have_text("done")
        expect(page.locator("ol.timeline")).to_contain_text("submitted")
        decisions = page.locator("dl.decisions")
        expect(decisions).to_contain_text("audio")
        expect(decisions).to_contain_text("none (a conversation of its own)")
        delivery = page.locator("table tr", has_text="files")
        expect(delivery).to_contain_text("done")
        links = delivery.locator("a.file")
        expect(links).to_have_count(2)  # json and markdown
        transcript = page.locator("ol.transcript li")
        assert transcript.count() > 0
        expect(transcript.first.locator(".speaker")).to_have_text(re.compile(r"Speaker \d"))
        expect(transcript.first.locator("time")).to_have_text(re.compile(r"\d\d:\d\d"))
        for heading in ("Topics", "Transcript"):
            expect(page.locator("h2", has_text=heading)).to_be_visible()
        page.set_viewport_size({"width": 1000, "height": 1000})
        screenshot(page, "recording", full_page=True, clip=CLIP)
        # a result file opens as text, served from what the sink reported writing
        response_info = page.expect_response(re.compile(rf"/recordings/{rid}/files/\d+$"))
        with response_info as opened:
            links.last.click()
        assert opened.value.status == 200
        assert opened.value.headers["content-type"].startswith("text/plain")
        expect(page.locator("body")).to_contain_text("weekly-sync")

    def test_failed_and_rejected_pages_say_why_and_what_to_do(self, site: Site, page):
        page.goto(f"{site.url}/recordings/{site.ids['garbage.wav']}")
        expect(page.locator("#error")).to_contain_text("not media")
        expect(page.locator("#error")).to_contain_text("Replace it")
        page.goto(f"{site.url}/recordings/{site.ids['flaky-call.wav']}")
        expect(page.locator("#error")).to_contain_text("failed")
        expect(page.locator("#error")).to_contain_text("What to do")
        expect(page.locator("button", has_text="Retry")).to_be_visible()

    def test_conversation_page_lists_its_parts_in_order(self, site: Site, page):
        rid = site.ids["board-meeting/part2.wav"]
        page.goto(f"{site.url}/recordings/{rid}")
        page.click("p.lead a[href^='/conversations/']")
        parts = page.locator("ol.parts li")
        expect(parts).to_have_count(2)
        expect(parts.nth(0)).to_contain_text("board-meeting/part1.wav")
        expect(parts.nth(1)).to_contain_text("board-meeting/part2.wav")

    def test_bad_input_gets_a_4xx_page_not_a_traceback(self, site: Site, page):
        for path, status, text in [
            ("/recordings/999999", 404, "no recording #999999"),
            ("/recordings/abc", 400, "not a recording number"),
            ("/recordings?state=bogus", 400, "state: expected one of"),
            ("/recordings?from=yesterday", 400, "YYYY-MM-DD"),
            ("/recordings?page=-1", 400, "page"),
            ("/recordings?q=" + "x" * 3000, 414, "longer than"),
            ("/conversations/nope", 404, "no conversation"),
            ("/nowhere", 404, "no page"),
        ]:
            response = page.goto(site.url + path)
            assert response.status == status, (path, response.status)
            expect(page.locator("p.error")).to_contain_text(text)
            assert "Traceback" not in page.content()

    def test_phone_width_keeps_the_page_readable(self, site: Site, browser, screenshot):
        context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        try:
            page = context.new_page()
            for path in ("/", "/recordings", f"/recordings/{site.ids['weekly-sync.wav']}"):
                page.goto(site.url + path)
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= 400, f"{path} scrolls sideways on a phone ({width}px)"
                name = path.strip("/").replace("/", "-") or "overview"
                screenshot(page, f"phone-{name}")
        finally:
            context.close()


class TestActions:
    def test_retry_needs_the_token_then_resumes_the_recording(self, site: Site, page):
        rid = site.ids["flaky-call.wav"]
        # without the token: the button is there, pressing it is refused
        page.goto(f"{site.url}/recordings/{rid}")
        expect(page.locator("section.actions")).to_contain_text("sign in")
        with page.expect_response(re.compile(rf"/recordings/{rid}/retry$")) as refused:
            page.click("button:has-text('Retry')")
        assert refused.value.status == 401
        expect(page.locator("p.error")).to_contain_text("token")
        assert site.row("flaky-call.wav")["state"] == "failed"

        # scripts: no token, a wrong one, a foreign Origin
        assert api(site, f"/api/recordings/{rid}/retry", "POST")[0] == 401
        wrong = {"Authorization": "Bearer not-the-token"}
        assert api(site, f"/api/recordings/{rid}/retry", "POST", **wrong)[0] == 401
        foreign = {"Authorization": f"Bearer {TOKEN}", "Origin": "http://evil.example"}
        assert api(site, f"/api/recordings/{rid}/retry", "POST", **foreign)[0] == 403
        assert site.row("flaky-call.wav")["state"] == "failed"

        # signed in, a form without its CSRF value is refused
        sign_in(page, site)
        page.goto(f"{site.url}/recordings/{rid}")
        expect(page.locator("header .who")).to_contain_text("signed in")
        page.eval_on_selector("form[action$='/retry'] input[name=csrf]", "e => e.value = 'x'")
        with page.expect_response(re.compile(rf"/recordings/{rid}/retry$")) as forged:
            page.click("button:has-text('Retry')")
        assert forged.value.status == 403
        assert site.row("flaky-call.wav")["state"] == "failed"

        # signed in, the real form: re-queued, and the page follows it to done by itself
        page.goto(f"{site.url}/recordings/{rid}")
        page.click("button:has-text('Retry')")
        expect(page.locator(".notice")).to_contain_text("re-queued")
        expect(page.locator("h1 .state")).to_have_text("done", timeout=MINUTE)
        expect(page.locator("ol.timeline")).to_contain_text("retry")

    def test_redeliver_through_the_api_with_the_token(self, site: Site):
        rid = site.ids["board-meeting/part1.wav"]
        auth = {"Authorization": f"Bearer {TOKEN}"}
        status, body = api(site, f"/api/recordings/{rid}/redeliver", "POST", **auth)
        # part 1 is not the conversation's latest part: redeliver works on the latest
        assert status == 200, body
        assert "redelivery to files queued" in body["message"]
        latest = site.ids["board-meeting/part2.wav"]
        site.env.wait_states({"board-meeting/part2.wav": "done"})
        status, detail = api(site, f"/api/recordings/{latest}")
        assert any(e["facts"].get("redeliver") == ["files"] for e in detail["timeline"])
        assert api(site, "/api/recordings/999999/redeliver", "POST", **auth)[0] == 404

    def test_queue_page_follows_a_recording_as_it_moves_on(self, site: Site, page, screenshot):
        site.sandbox.set_options({"job_seconds": 4.0})
        try:
            page.goto(site.url + "/queue")
            expect(page.locator("p.empty")).to_be_visible()
            drop(site.staged("late-arrival.wav", frequency_hz=530), site.env.inbox)
            row = page.locator("tr", has_text="late-arrival.wav")
            expect(row).to_be_visible(timeout=MINUTE)  # appears without a reload
            expect(row.locator(".state")).to_have_text("submitted", timeout=MINUTE)
            expect(row).to_contain_text("the Symbl job")
            screenshot(page, "queue")
            expect(row).to_have_count(0, timeout=MINUTE)  # done: it leaves the queue
            expect(page.locator("p.empty")).to_be_visible()
        finally:
            site.sandbox.set_options({"job_seconds": 0.5})
        assert site.row("late-arrival.wav")["state"] == "done"


class TestApi:
    def test_status_and_recordings_json(self, site: Site):
        status, body = api(site, "/api/status")
        assert status == 200
        assert body["states"]["rejected"] == 1 and body["states"]["done"] >= 3
        assert body["slots"]["limit"] == 5
        assert body["watches"][0]["health"] == "watching"
        assert [s["name"] for s in body["sinks"]] == ["files"]
        status, found = api(site, "/api/recordings?state=rejected")
        assert status == 200 and [r["path"] for r in found["recordings"]] == ["garbage.wav"]
        status, error = api(site, "/api/recordings?state=nope")
        assert status == 400 and "state" in error["error"]
        status, detail = api(site, f"/api/recordings/{site.ids['weekly-sync.wav']}")
        assert detail["state"] == "done" and detail["deliveries"][0]["state"] == "done"
        assert api(site, "/api/recordings/123456789")[0] == 404

    def test_no_secret_on_any_page(self, site: Site, page):
        secret = "sandbox"  # the app secret; the token too
        for path in ("/", "/queue", "/recordings", f"/recordings/{site.ids['weekly-sync.wav']}"):
            page.goto(site.url + path)
            html = page.content()
            assert TOKEN not in html
            assert f"app_secret: {secret}" not in html
