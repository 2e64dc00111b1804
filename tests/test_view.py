"""evals view: the index-backed store, the JSON endpoints, and the page in headless Chromium
(driven over the DevTools protocol with aiohttp's websocket client)."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from evals import score_index
from evals.records import RunLog
from evals.view.server import Viewer, highlight, start
from evals.view.store import Filters, RunView, differing

from conftest import REPO, require

ARTIFACTS = REPO / "tests" / "artifacts"
SETTINGS = ("effort=low", "effort=high")
RULES = ("answer_line", "last_letter")


def gpqa_record(i: int, gen: int, setting: str) -> dict:
    """A GPQA-like record: a letter committed in the completion, with where it was found."""
    right = (i + gen + (setting == "effort=high")) % 3 != 0
    letter = "B" if right else "C"
    completion = f"Some working for problem {i}.\nThe options differ.\nAnswer: {letter}"
    no_answer = i == 7 and setting == "effort=low"
    return {"task": "gpqa", "model": "openai/m1", "setting": setting, "sample_id": f"q{i:02d}",
            "gen": gen, "status": "no_answer" if no_answer else "ok",
            "score": 0.0 if no_answer else float(right),
            "answer": None if no_answer else ("correct" if right else "wrong1"),
            "target": "B", "completion": completion, "reasoning": f"thinking about {i}",
            "finish_reason": "length" if i == 3 else "stop",
            "explanation": f"{letter} (answer_line, in text)",
            "usage": {"prompt": 100.0, "completion": 50.0 + i + gen, "reasoning": 20.0},
            "latency": 1.0 + i / 10 + gen / 100, "cost": 1e-4 * (i + 1), "cached": False,
            "metadata": {"domain": ("Physics", "Chemistry")[i % 2],
                         "subdomain": ("Optics", "Organic")[i % 2]},
            "score_metadata": None if no_answer else {
                "letter": letter, "rule": RULES[i % 2], "where": "text",
                "offset": completion.index("Answer:"), "context": f"Answer: {letter}",
                "line": f"Answer: {letter}"},
            "settings": {"effort": setting.partition("=")[2] or None, "thinking_budget": None,
                         "max_tokens": None, "samples": 2}}


def swe_record(i: int) -> dict:
    passed = i % 2 == 0
    return {"task": "swe", "model": "openai/m1", "setting": "default", "sample_id": f"repo__{i}",
            "gen": 0, "status": "resolved" if passed else "unresolved", "score": float(passed),
            "answer": f"diff:{i:012x}", "target": None, "completion": "```diff\n...\n```",
            "reasoning": None, "finish_reason": "stop", "explanation": "tests",
            "usage": {"prompt": 10.0, "completion": 5.0, "reasoning": 0.0}, "latency": 2.0,
            "cost": None, "cached": False, "metadata": {},
            "score_metadata": {"outcome": "resolved" if passed else "unresolved",
                               "tests": {"FAIL_TO_PASS": [1, 1]},
                               "applied_diff": f"--- a/f{i}.py\n+++ b/f{i}.py\n+fixed = True\n",
                               "reverted": [{"path": "setup.cfg", "why": "test settings"}],
                               "test_log": f"collected 3 items\nPASSED test_{i}\n"},
            "settings": {"effort": None, "thinking_budget": None, "max_tokens": None,
                         "samples": 1}}


def write_run(results: Path, run_id: str, records: list[dict], indexed: bool = True) -> Path:
    log = RunLog(results / run_id)
    log.write_meta({"run_id": run_id, "status": "completed", "started": "2025-01-01T00:00:00",
                    "config": None})
    log.append(records)
    log.close()
    if not indexed:
        score_index.index_path(log.samples_path).unlink()
    return log.dir


@pytest.fixture()
def results(tmp_path) -> Path:
    out = tmp_path / "results"
    recs = [gpqa_record(i, g, s) for s in SETTINGS for i in range(12) for g in range(2)]
    # a retried generation: an error first, superseded by its answer
    recs.insert(3, {**gpqa_record(1, 0, "effort=low"), "status": "error", "score": None,
                    "answer": None, "error": "HTTP 500"})
    write_run(out, "run-gpqa", recs)
    write_run(out, "run-swe", [swe_record(i) for i in range(4)], indexed=False)
    math_rec = {**gpqa_record(0, 0, "default"), "task": "math", "sample_id": "m1",
                "completion": "so x = 3.\nThe answer is \\boxed{3/4}. Done",
                "score_metadata": {"rule": "sympy", "extracted_by": "boxed",
                                   "extracted": "3/4", "where": "text"}}
    write_run(out, "run-math", [math_rec])
    return out


# ------------------------------------------------------------------ store


def test_store_lists_filters_and_sorts_through_the_index(results):
    v = RunView(RunLog(results / "run-gpqa"))
    assert v.size == 49 and len(v.groups) == 2
    everything = v.page(Filters(), limit=500)
    assert everything["total"] == 49 and everything["exact"]
    assert [r["i"] for r in everything["rows"]] == list(range(49))
    low = {g for g, key in enumerate(v.groups) if key[2] == "effort=low"}
    page = v.page(Filters(groups=low, outcome="correct"), limit=500)
    assert page["rows"] and all(r["setting"] == "effort=low" and r["score"] == 1.0
                                for r in page["rows"])
    assert page["total"] == sum(1 for r in everything["rows"]
                                if r["setting"] == "effort=low" and r["score"] == 1.0)
    unscored = v.page(Filters(outcome="unscored"))
    assert [r["status"] for r in unscored["rows"]] == [None] or unscored["total"] == 1
    no_answer = v.page(Filters(no_answer=True))
    assert {r["sample_id"] for r in no_answer["rows"]} == {"q07"}
    physics = v.page(Filters(categories=v.category_codes(domain="Physics")), limit=500)
    assert physics["total"] == 24 and all(int(r["sample_id"][1:]) % 2 == 0
                                          for r in physics["rows"])
    optics = v.category_codes(subdomain="Physics / Optics")
    assert optics == v.category_codes(domain="Physics")
    cut = v.page(Filters(length_cut=True), limit=500)
    assert {r["sample_id"] for r in cut["rows"]} == {"q03"}
    scored = v.page(Filters(score_min=0.5, score_max=1.0), limit=500)
    assert all(r["score"] == 1.0 for r in scored["rows"])


def test_sorting_pages_agree_with_a_full_sort(results):
    v = RunView(RunLog(results / "run-gpqa"))
    for sort in ("score", "latency", "cost", "tokens", "gen"):
        for desc in (False, True):
            column = {"tokens": v.tokens}.get(sort, getattr(v, sort)).astype(np.float64)
            key = np.where(np.isnan(column), np.inf, -column if desc else column)
            expected = np.lexsort((np.arange(v.size), key)).tolist()
            got = []
            for offset in range(0, v.size, 10):
                got += [r["i"] for r in v.page(Filters(), sort, desc, offset, 10)["rows"]]
            assert got == expected, (sort, desc)


def test_filters_on_record_fields_read_the_records(results):
    v = RunView(RunLog(results / "run-gpqa"))
    page = v.page(Filters(rule="last_letter"), limit=500)
    assert page["exact"] and page["rows"]
    assert all(int(r["sample_id"][1:]) % 2 == 1 and r["rule"] == "last_letter"
               for r in page["rows"])
    assert "answer_line" in v.facets()["rules"]
    swe = RunView(RunLog(results / "run-swe"))  # no index file: encoded in memory
    resolved = swe.page(Filters(swe="resolved"))
    assert [r["sample_id"] for r in resolved["rows"]] == ["repo__0", "repo__2"]
    assert swe.facets()["swe"] == ["resolved", "unresolved"]


def test_differing_verdicts_and_counterparts(results):
    v = RunView(RunLog(results / "run-gpqa"))
    low, high = (v.groups.index(("gpqa", "openai/m1", s)) for s in SETTINGS)
    d = differing(v, low, v, high, limit=100)
    means = {}
    for s in SETTINGS:
        for i in range(12):
            scores = [gpqa_record(i, g, s)["score"] for g in range(2)]
            means[(s, f"q{i:02d}")] = sum(scores) / 2
    expected = {sid for (s, sid), m in means.items() if s == SETTINGS[0]
                and (m >= 0.5) != (means[(SETTINGS[1], sid)] >= 0.5)}
    assert {r["sample_id"] for r in d["rows"]} == expected and d["total"] == len(expected)
    assert d["common"] == 12 and d["a_right"] + d["b_right"] == d["total"]
    for r in d["rows"]:
        assert v.record(r["a"]["i"])["setting"] == SETTINGS[0]
        assert v.record(r["b"]["i"])["sample_id"] == r["sample_id"]
    # the retried generation counts once, with its later (scored) record
    assert v.problem_scores(low)[score_index.hash64("q01")][1] == 2
    with pytest.raises(ValueError, match="same task"):
        math = RunView(RunLog(results / "run-math"))
        differing(v, low, math, 0)


def test_a_changed_file_is_refused_not_misread(results):
    v = RunView(RunLog(results / "run-gpqa"))
    path = results / "run-gpqa" / "samples.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[0], lines[5] = lines[5], lines[0]
    path.write_bytes(b"".join(lines))
    with pytest.raises(ValueError, match="does not match its index"):
        v.record(0)


def test_highlight_finds_the_extracted_answer(results):
    gpqa = RunView(RunLog(results / "run-gpqa")).record(0)
    hl = highlight(gpqa)
    assert gpqa[hl["field"]][hl["start"]:hl["end"]] == gpqa["completion"].splitlines()[-1]
    math = RunView(RunLog(results / "run-math")).record(0)
    hl = highlight(math)
    assert hl["field"] == "completion" and math["completion"][hl["start"]:hl["end"]] == "3/4"
    assert highlight({"completion": "x", "score_metadata": None}) is None


# ------------------------------------------------------------------ endpoints


async def test_endpoints(results):
    viewer = Viewer(results)
    runner, url = await start(viewer)
    try:
        async with aiohttp.ClientSession() as http:
            async def get(path: str, status: int = 200):
                async with http.get(url + path.lstrip("/")) as res:
                    assert res.status == status, await res.text()
                    return await res.json()

            runs = await get("/api/runs")
            assert {r["id"] for r in runs} == {"run-gpqa", "run-swe", "run-math"}
            page = await get("/api/runs/run-gpqa/samples?setting=effort%3Dhigh&sort=latency"
                             "&desc=1&limit=5")
            assert page["total"] == 24 and len(page["rows"]) == 5
            lat = [r["latency"] for r in page["rows"]]
            assert lat == sorted(lat, reverse=True)
            rec = await get(f"/api/runs/run-gpqa/records/{page['rows'][0]['i']}")
            assert rec["record"]["setting"] == "effort=high" and rec["highlight"]
            others = [c for c in rec["counterparts"] if not c["same"]]
            assert [(c["setting"], len(c["gens"])) for c in others] == [("effort=low", 2)]
            groups = await get("/api/groups")
            a = next(g for g in groups if g["setting"] == "effort=low")
            b = next(g for g in groups if g["setting"] == "effort=high")
            d = await get(f"/api/differ?a=run-gpqa:{a['group']}&b=run-gpqa:{b['group']}")
            assert d["total"] > 0
            for _ in range(600):  # metrics come from a worker process
                m = await get("/api/runs/run-gpqa/metrics")
                if m["state"] != "computing":
                    break
                await asyncio.sleep(0.1)
            assert m["state"] == "ready"
            acc = {r["setting"]: r["value"] for r in m["rows"] if r["metric"] == "accuracy"}
            assert set(acc) == set(SETTINGS)
            prompt = await get("/api/runs/run-gpqa/prompt?task=gpqa&sample_id=q00")
            assert prompt["messages"] is None and "configuration" in prompt["why"]
            await get("/api/runs/nope/samples", 404)
            await get("/api/runs/run-gpqa/records/100000", 404)
            await get("/api/runs/run-gpqa/samples?sort=bogus", 400)
            await get("/api/runs/run-gpqa/samples?outcome=bogus", 400)
            async with http.get(url) as res:
                assert "app.js" in await res.text()
    finally:
        await runner.cleanup()


def test_static_assets_hold_no_url():
    """Nothing is fetched at run time: the page names no host."""
    static = REPO / "evals" / "view" / "static"
    for path in static.iterdir():
        text = path.read_text()
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text), path


def test_prompt_is_rebuilt_from_the_run_configuration(tmp_path):
    """A real run (gold runner): the sample page's prompt comes from the task."""
    from conftest import run_cli

    results = tmp_path / "results"
    done = run_cli("run", "arithmetic", "-m", "gold", "--limit", "2", "--run-id", "r1",
                   "--results-dir", str(results), "--no-progress")
    assert done.returncode == 0, done.stderr
    viewer = Viewer(results)
    v = viewer.view("r1")
    rec = v.record(0)
    prompt = viewer.prompt("r1", rec["task"], rec["sample_id"])
    assert prompt["why"] is None and prompt["messages"][-1]["role"] == "user"
    viewer.close()


# ------------------------------------------------------------------ headless Chromium


def chromium() -> str:
    return require("chromium", "chromium-browser", binary=True,
                   hint="apt-get install -y chromium (headless, it drives the viewer's page)")


class Browser:
    """Headless Chromium over the DevTools protocol: one page, commands by id."""

    def __init__(self, binary: str, profile: Path):
        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.profile = profile
        self.next_id = 0

    async def connect(self, http: aiohttp.ClientSession) -> None:
        port_file = self.profile / "DevToolsActivePort"
        for _ in range(600):
            if port_file.exists() and port_file.read_text().strip():
                break
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        async with http.get(f"http://127.0.0.1:{port}/json/list") as res:
            pages = [t for t in await res.json() if t["type"] == "page"]
        self.ws = await http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)
        await self.send("Emulation.setDeviceMetricsOverride", width=1400, height=1000,
                        deviceScaleFactor=1, mobile=False)

    async def send(self, method: str, **params):
        self.next_id += 1
        mine = self.next_id
        await self.ws.send_json({"id": mine, "method": method, "params": params})
        while True:
            msg = json.loads((await self.ws.receive()).data)
            if msg.get("id") == mine:
                assert "error" not in msg, msg
                return msg["result"]

    async def js(self, expression: str):
        out = await self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                              awaitPromise=True)
        assert "exceptionDetails" not in out, out
        return out["result"].get("value")

    async def ready(self, hash_: str) -> None:
        """Wait until the page has rendered the route ``hash_``."""
        for _ in range(400):
            # mid-navigation there is no body yet: not ready, not an error
            if await self.js(f"!!document.body && document.body.dataset.ready === "
                             f"{json.dumps(hash_)}"):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"route {hash_} never rendered: "
                             f"{await self.js('document.body.innerText')}")

    async def goto(self, url: str, hash_: str) -> None:
        await self.send("Page.navigate", url=url)
        await self.ready(hash_)

    async def click(self, selector: str) -> None:
        """A real mouse click at the element's centre."""
        box = await self.js(f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
                            f" e.scrollIntoView({{block: 'center'}}); const r ="
                            f" e.getBoundingClientRect(); return [r.x + r.width / 2,"
                            f" r.y + r.height / 2]; }})()")
        for kind in ("mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1],
                            button="left", clickCount=1)

    async def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / ".gitignore").write_text("*\n")  # artifacts never reach git
        data = (await self.send("Page.captureScreenshot", format="png"))["data"]
        path = ARTIFACTS / name
        path.write_bytes(base64.b64decode(data))
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
        return path

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture()
def served(results):
    """``evals view --no-browser`` as a user starts it: (process, url)."""
    proc = subprocess.Popen([sys.executable, "-m", "evals.cli", "view", "--no-browser",
                             "--results-dir", str(results)], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    line = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+/", line)
    assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
    yield proc, match.group(0)
    proc.terminate()
    proc.wait(10)


async def test_page_in_headless_chromium(served, tmp_path):
    binary = chromium()
    _, url = served
    browser = Browser(binary, tmp_path / "profile")
    try:
        async with aiohttp.ClientSession() as http:
            await browser.connect(http)
            # Runs, with their metrics once computed.
            await browser.goto(url, "")
            assert await browser.js("document.querySelectorAll('#runs tr').length") == 4
            for _ in range(600):
                if await browser.js("document.querySelectorAll('.metric-table').length") == 3:
                    break
                await asyncio.sleep(0.1)
            assert "accuracy" in await browser.js(
                "document.querySelector('[data-run=\"run-gpqa\"]').innerText")
            await browser.screenshot("view-runs.png")

            # The sample list: filter by setting and outcome with the form, by clicks.
            await browser.js("document.querySelector('a.samples-link').scrollIntoView()")
            first = await browser.js("document.querySelector('#runs tr:nth-child(2) td').innerText")
            await browser.click(f"a.samples-link[href='#/samples/{first}']")
            await browser.ready(f"#/samples/{first}")
            if first != "run-gpqa":
                await browser.goto(url + "#/samples/run-gpqa", "#/samples/run-gpqa")
            assert "of 49" in await browser.js("document.getElementById('count').innerText")
            await browser.js("document.getElementById('f-setting').value = 'effort=high';"
                             "document.getElementById('f-outcome').value = 'incorrect'")
            await browser.click("#apply")
            await browser.ready("#/samples/run-gpqa?setting=effort%3Dhigh&outcome=incorrect")
            cells = await browser.js("[...document.querySelectorAll('#samples tr.row')]"
                                     ".map(r => [r.children[2].innerText, r.children[6].innerText])")
            assert cells and all(c == ["effort=high", "0"] for c in cells)
            await browser.screenshot("view-samples-filtered.png")

            # Paging.
            await browser.goto(url + "#/samples/run-gpqa?limit=20", "#/samples/run-gpqa?limit=20")
            await browser.click("#next")
            await browser.ready("#/samples/run-gpqa?limit=20&offset=20")
            assert (await browser.js("document.getElementById('count').innerText")
                    ).startswith("21-40 of 49")

            # A sample: the highlighted answer, then side by side with the other setting.
            await browser.click("#samples tr.row td a")
            hash_ = await browser.js("location.hash")
            assert hash_.startswith("#/sample/run-gpqa/")
            await browser.ready(hash_)
            assert (await browser.js("document.querySelector('mark.answer').innerText")
                    ).startswith("Answer: ")
            await browser.screenshot("view-sample.png")
            own = await browser.js("document.querySelector('main h2').innerText")
            target = await browser.js("document.querySelector('#compare-with option:nth-child(2)')"
                                      ".value")
            await browser.js(f"const s = document.getElementById('compare-with');"
                             f" s.value = {json.dumps(target)};"
                             f" s.dispatchEvent(new Event('change'))")
            await browser.ready(target)
            sides = await browser.js("[...document.querySelectorAll('#pair section h2:first-child')]"
                                     ".map(e => e.innerText)")
            assert sides[0] == own and {s.split(" | ")[1] for s in sides} == set(SETTINGS)
            await browser.screenshot("view-side-by-side.png")

            # Verdicts that differ, then one of them side by side.
            await browser.goto(url + "#/differ", "#/differ")
            await browser.js("document.getElementById('side-b').selectedIndex = 1")
            await browser.click("#compare")
            hash_ = await browser.js("location.hash")
            await browser.ready(hash_)
            summary = await browser.js("document.getElementById('differ-summary').innerText")
            assert re.match(r"\d+ of 12 common problems differ", summary), summary
            await browser.screenshot("view-differ.png")
            await browser.click("a.pair-link")
            hash_ = await browser.js("location.hash")
            assert hash_.startswith("#/pair/")
            await browser.ready(hash_)
            assert await browser.js("document.querySelectorAll('#pair section').length") == 2

            # SWE: the applied diff, reverted files and test log.
            await browser.goto(url + "#/sample/run-swe/0", "#/sample/run-swe/0")
            text = await browser.js("document.body.innerText")
            assert "+fixed = True" in text and "setup.cfg: test settings" in text
            assert "PASSED test_0" in text
            await browser.screenshot("view-swe.png")
    finally:
        browser.close()
