"""The HTML report end to end: real runs (gold runner, fake OpenAI server), the report,
and the page as headless Chromium renders it."""

import random
import re
import shutil
import socket
import subprocess
import threading
from html.parser import HTMLParser
from pathlib import Path

import pytest

from evals.fake_openai import FakeServer
from evals.records import RunLog
from evals.report import build_report
from evals.run import RunConfig, execute
from tests.conftest import REPO, require
from tests.data.chores_task import chores_script

ARTIFACTS = REPO / "tests" / "artifacts"
EFFORT_WORDS = {"low": 40, "medium": 120, "high": 360}
SKILL = {"fake-a": {"low": 0.3, "medium": 0.55, "high": 0.7},
         "fake-b": {"low": 0.5, "medium": 0.65, "high": 0.8}}
FAKE_SETTINGS = {f"effort={e},n=4" for e in EFFORT_WORDS}
CHORES = str(REPO / "tests" / "data" / "chores_task.py")
AGENT_SETTINGS = {f"steps={n}{t}" for n in (2, 4, 8) for t in (",agent_tokens=80", "")}


def script(body, index):
    """Longer reasoning and better answers with effort; fake-b thinks twice as long."""
    prompt = body["messages"][-1]["content"]
    value = eval(prompt.split("Compute ")[1].split(". Think")[0])
    model, effort = body["model"], body.get("reasoning_effort", "medium")
    words = EFFORT_WORDS[effort] * (2 if model == "fake-b" else 1)
    right = (sum(map(ord, prompt)) * 31 + index * 17) % 100 < 100 * SKILL[model][effort]
    wrong = value + 1 + (index % 2) if index % 3 else value + 1  # wrong answers split votes
    return {"content": f"ANSWER: {value if right else wrong}", "reasoning_content": "hm " * words}


def synthetic_run(root: Path) -> None:
    """An interrupted run of a GPQA-like task (domain/subdomain metadata) and a
    needle-like one (length x depth), written as the run log stores records."""
    rng = random.Random(0)
    log = RunLog(root / "synthetic")
    log.write_meta({"run_id": "synthetic", "status": "interrupted", "started": "2099-01-01"})
    domains = {"Physics": ["Quantum", "Optics"], "Biology": ["Genetics"]}
    records = []
    for model, skill in (("openai/fake-a", 0.5), ("openai/fake-b", 0.7)):
        base = {"model": model, "setting": "default", "status": "ok", "cost": None,
                "latency": 1.0}
        for i in range(40):
            domain = list(domains)[i % 2]
            subs = domains[domain]
            meta = {"domain": domain, "subdomain": subs[(i // 2) % len(subs)]}
            for gen in range(2):
                score = float(rng.random() < skill)
                records.append({**base, "task": "quiz", "sample_id": f"q{i}", "gen": gen,
                                "score": score, "answer": "AB"[int(score)], "metadata": meta,
                                "usage": {"prompt": 100, "completion": 200, "reasoning": 0}})
        for i in range(40):
            meta = {"variant": "single", "length": [1024, 4096, 16384, 65536][i % 4],
                    "depth": [0.0, 0.25, 0.5, 0.75, 1.0][(i // 4) % 5]}
            records.append({**base, "task": "haystack", "sample_id": f"h{i}", "gen": 0,
                            "score": float(rng.random() < skill), "answer": "x", "metadata": meta,
                            "usage": {"prompt": meta["length"], "completion": 20, "reasoning": 0}})
    log.append(records)
    log.close()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    prices = root.parent / "prices.toml"
    prices.write_text('[models."fake-a"]\ninput = 1.0\noutput = 4.0\n'
                      '[models."fake-b"]\ninput = 3.0\noutput = 12.0\n')
    # Gold, N = 2: every problem unanimous and right (Wilson interval on 12 problems).
    execute(RunConfig(tasks=["arithmetic"], models=["gold"], task_params={"count": "12"},
                      efforts=["low", "high"], samples=2, cache=False), RunLog(root / "gold"), [])
    with FakeServer(script=script) as srv:
        srv.inject("500", times=2, match="Compute (1")  # unscored errors (retries=0)
        execute(RunConfig(tasks=["arithmetic"], models=["openai/fake-a", "openai/fake-b"],
                          model_options={"base_url": srv.url, "prices": str(prices)},
                          task_params={"count": "12"}, efforts=list(EFFORT_WORDS), samples=4,
                          retries=0, cache=False, concurrency=4), RunLog(root / "fake"), [])
    # An agent's task: three step limits, with and without a token limit per episode.
    with FakeServer(script=chores_script) as srv:
        execute(RunConfig(tasks=["chores"], models=["openai/fake-a"], tasks_dirs=[CHORES],
                          model_options={"base_url": srv.url, "prices": str(prices)},
                          max_steps=[2, 4, 8], agent_max_tokens=[80, None], cache=False),
                RunLog(root / "agent"), [])
    synthetic_run(root)
    return root


@pytest.fixture(scope="module")
def report(results, tmp_path_factory):
    return build_report(results, tmp_path_factory.mktemp("report") / "report.html")


VOID = {"meta", "br", "img", "link", "input", "hr"}  # HTML elements without an end tag


class Dom(HTMLParser):
    """Elements as (tag, attrs, text, enclosing svg's aria-label)."""

    def __init__(self, html: str):
        super().__init__()
        self.elements: list[dict] = []
        self._open: list[dict] = []
        self._svg: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        el = {"tag": tag, "attrs": dict(attrs), "text": "",
              "svg": self._svg[-1] if self._svg else None}
        el["classes"] = set((el["attrs"].get("class") or "").split())
        self.elements.append(el)
        if tag == "svg":
            self._svg.append(el["attrs"].get("aria-label", ""))
        if tag not in VOID:
            self._open.append(el)

    def handle_endtag(self, tag):
        if tag == "svg" and self._svg:
            self._svg.pop()
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i]["tag"] == tag:
                del self._open[i:]
                break

    def handle_data(self, data):
        for el in self._open:
            el["text"] += data

    def find(self, tag=None, cls=None, svg=None):
        return [e for e in self.elements if (tag is None or e["tag"] == tag)
                and (cls is None or cls in e["classes"]) and (svg is None or e["svg"] == svg)]


def check_page(dom: Dom) -> None:
    """What the report must show; shared by the source and the rendered DOM."""
    rows = {(e["attrs"]["data-task"], e["attrs"]["data-model"], e["attrs"]["data-setting"]): e
            for e in dom.find("tr", "row")}
    expected = ({("arithmetic", "gold", f"effort={e},n=2") for e in ("low", "high")}
                | {("arithmetic", f"openai/{m}", s) for m in SKILL for s in FAKE_SETTINGS}
                | {(t, f"openai/{m}", "default") for t in ("quiz", "haystack") for m in SKILL}
                | {("chores", "openai/fake-a", s) for s in AGENT_SETTINGS})
    assert set(rows) == expected
    gold = rows[("arithmetic", "gold", "effort=high,n=2")]["text"]
    assert "1.000" in gold and "[0.758, 1.000]" in gold  # Wilson on 12/12 problems
    assert any("errors" in e["classes"] and e["attrs"]["data-status"] == "errors"
               for e in rows.values())
    done = ("arithmetic", "chores")
    assert all("incomplete" in rows[k]["classes"] for k in expected if k[0] not in done)
    assert not any("incomplete" in rows[k]["classes"] for k in expected if k[0] in done)
    check_agent(dom, rows)

    plot = "arithmetic: score vs compute"
    lines = dom.find("polyline", "model-line", svg=plot)
    # One line per model through its settings; gold is in the table only.
    assert sorted(e["attrs"]["data-model"] for e in lines) == ["openai/fake-a", "openai/fake-b"]
    assert all(len(e["attrs"]["points"].split()) == 3 for e in lines)
    points = dom.find("g", "pt", svg=plot)
    metrics = {e["attrs"]["data-metric"] for e in points}
    assert {"accuracy", "maj@2", "maj@4", "pass@2", "pass@4"} <= metrics
    assert len(dom.find("polyline", "frontier", svg=plot)) == 1
    check_pareto(points)

    heatmaps = [e for e in dom.find("svg", "heatmap")]
    assert len(heatmaps) == 2
    cells = [e for e in dom.find("g", "cell") if e["svg"] == heatmaps[0]["attrs"]["aria-label"]]
    assert len(cells) == 4 * 5 and all(e["text"].strip().endswith("%") for e in cells)
    domain = dom.find("table", "breakdown")
    assert len(domain) == 1
    for name in ("overall", "Physics", "Quantum", "Optics", "Biology", "Genetics"):
        assert name in domain[0]["text"]


def check_agent(dom: Dom, rows: dict) -> None:
    """The agent's task: mean steps in the table; resolved rate vs cost per instance, a
    point per setting, a line per step limit through its settings in order of cost."""
    head = [e["text"] for e in dom.find("th")]
    assert head.index("steps") == head.index("tokens") - 1
    for setting, steps in (("steps=2", "2.0"), ("steps=8", "3.5")):
        at = dom.elements.index(rows[("chores", "openai/fake-a", setting)])
        cells = [e["text"] for e in dom.elements[at + 1:at + 40] if e["tag"] == "td"]
        assert cells[head.index("steps")] == steps  # 2 steps each; 1 to 4 commands, submit
    plot = "chores: resolved rate vs cost per instance"
    lines = {e["attrs"]["data-series"]: e for e in dom.find("polyline", "series-line", svg=plot)}
    assert sorted(lines) == ["steps=2", "steps=4", "steps=8"]
    assert all(len(e["attrs"]["points"].split()) == 2 for e in lines.values())
    points = dom.find("g", "pt", svg=plot)
    assert {e["attrs"]["data-setting"] for e in points} == AGENT_SETTINGS
    resolved = {e["attrs"]["data-setting"]: float(e["attrs"]["data-y"]) for e in points}
    cost = {e["attrs"]["data-setting"]: float(e["attrs"]["data-x"]) for e in points}
    assert resolved["steps=2"] < resolved["steps=4"] < resolved["steps=8"] == 1.0
    assert cost["steps=2"] < cost["steps=8"]  # more steps, more turns paid for
    assert resolved["steps=8,agent_tokens=80"] < resolved["steps=8"]  # the token limit bites
    assert len(dom.find("line", "ci", svg=plot)) == len(points)  # every point's interval
    check_pareto(points)


def check_pareto(points: list[dict]) -> None:
    """Marked points are exactly the deployable ones no other deployable point beats."""
    deployable = [(float(e["attrs"]["data-x"]), float(e["attrs"]["data-y"]),
                   "pareto" in e["classes"])
                  for e in points if not e["attrs"]["data-metric"].startswith("pass@")]
    assert any(on for _, _, on in deployable)
    for x, y, on in deployable:
        beaten = any(x2 <= x and y2 >= y and (x2, y2) != (x, y) for x2, y2, _ in deployable)
        if on:
            assert not beaten, (x, y)
        else:  # beaten, or a duplicate of a marked point
            assert beaten or any(on2 for x2, y2, on2 in deployable if (x2, y2) == (x, y)), (x, y)
    assert not any("pareto" in e["classes"] for e in points
                   if e["attrs"]["data-metric"].startswith("pass@"))


def assert_offline(html: str) -> None:
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html, re.I)
    for needle in ("<script", "<link", "<img", "<iframe", "src=", "@import", "url("):
        assert needle not in html.lower(), needle


def test_report_shows_table_plots_and_breakdowns(report):
    html = report.read_text()
    assert_offline(html)
    check_page(Dom(html))


def test_report_cost_axis_filters_and_errors(results, tmp_path):
    html = build_report(results, tmp_path / "cost.html", x_axis="cost").read_text()
    dom = Dom(html)
    labels = [e["text"] for e in dom.find("text", "axis-label")]
    assert any("USD per problem" in t for t in labels)  # arithmetic: every cost known
    assert "plotted against tokens" in html  # haystack and quiz: no prices
    only = Dom(build_report(results, tmp_path / "q.html", tasks=["quiz"],
                            models=["openai/fake-b"]).read_text())
    assert {e["attrs"]["data-task"] for e in only.find("tr", "row")} == {"quiz"}
    assert len(only.find("tr", "row")) == 1
    with pytest.raises(ValueError):
        build_report(results, tmp_path / "x.html", x_axis="watts")
    empty = build_report(tmp_path / "nothing", tmp_path / "empty.html").read_text()
    assert "No results found" in empty


def test_pareto_front_and_axes():
    from evals.report_svg import Point, pareto_front, x_axis
    pts = [Point("m", "s", "accuracy", 1, 10, 0.5), Point("m", "s", "maj", 4, 40, 0.6),
           Point("m", "s", "pass", 4, 40, 0.9), Point("m", "t", "accuracy", 1, 50, 0.55),
           Point("n", "s", "accuracy", 1, 10, 0.4), Point("n", "s", "best", 2, 80, 0.7)]
    assert [(p.x, p.y) for p in pareto_front(pts)] == [(10, 0.5), (40, 0.6), (80, 0.7)]
    assert x_axis([1, 100], 0, 100).log and not x_axis([10, 20], 0, 100).log
    assert not x_axis([0.0, 5.0], 0, 100).log  # a free model: no log scale


# ------------------------------------------------------------------ Chromium

def chromium() -> str:
    return require("chromium", "chromium-browser", binary=True,
                   hint="apt-get install -y chromium (headless, it renders the HTML report)")


# Chromium's own background services (time, updates, accounts); the page's requests
# would go anywhere else.  The source check above already forbids any URL.
BACKGROUND = (".google.com", ".googleapis.com", ".gvt1.com", ".gstatic.com")


class Proxy:
    """A proxy that answers nothing and remembers the first line of every request."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.requests.append(conn.recv(4096).split(b"\r\n")[0].decode(errors="replace"))
                except OSError:
                    pass

    def page_requests(self) -> list[str]:
        hosts = [(line, re.sub(r":\d+$", "", (line.split() + ["", ""])[1]
                               .split("://")[-1].split("/")[0])) for line in self.requests]
        return [line for line, host in hosts if not host.endswith(BACKGROUND)]


def run_chromium(binary: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    proxy = Proxy()
    try:
        done = subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", f"--user-data-dir={tmp_path / 'chromium-profile'}",
             f"--proxy-server=127.0.0.1:{proxy.port}", "--proxy-bypass-list=<-loopback>", *args],
            capture_output=True, text=True, timeout=120)
    finally:
        proxy.sock.close()
    assert done.returncode == 0, done.stderr[-2000:]
    assert proxy.page_requests() == [], proxy.requests
    return done


def test_report_renders_offline_in_chromium(report, tmp_path):
    binary = chromium()
    url = report.resolve().as_uri()
    dom = run_chromium(binary, tmp_path, "--dump-dom", url).stdout
    assert "<svg" in dom
    check_page(Dom(dom))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / ".gitignore").write_text("*\n")  # artifacts never reach git
    png = ARTIFACTS / "report.png"
    png.unlink(missing_ok=True)
    run_chromium(binary, tmp_path, f"--screenshot={png}", "--window-size=1400,2000", url)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    shutil.copy(report, ARTIFACTS / "report.html")


# ------------------------------------------------------------------ labels and figures

def test_charts_label_points_and_use_the_page_width(report):
    html = report.read_text()
    assert re.search(r'<svg class="plot" width="100%" viewBox=', html)
    labels = re.findall(r'<text class="pt-label"[^>]*>([^<]*)</text>', html)
    for setting in FAKE_SETTINGS:  # every accuracy point names its setting on the chart
        assert setting in labels
    assert any(label.startswith("maj@4 ") for label in labels)


def test_depth_labels_and_one_setting_tasks():
    from evals.report import _fmt_depth, _fractions

    assert [_fmt_depth(d, _fractions({0.0, 0.25, 1.0})) for d in (0.0, 0.25, 1.0)] == [
        "0%", "25%", "100%"]
    percents = {0, 1, 10, 25, 100}  # needle writes percents: 1 is 1%, not 100%
    assert [_fmt_depth(d, _fractions(percents)) for d in sorted(percents)] == [
        "0%", "1%", "10%", "25%", "100%"]
    from evals.report import _plot
    from evals.report_data import Group

    g = Group("t", "m", "default", "r", "completed",
              metrics={"accuracy": {"metric": "accuracy", "value": 0.5, "k": None, "n": 3,
                                    "cost_per_problem": 0.01, "samples": 1}})
    out = _plot("t", [g], {"m": "#000"}, "cost")
    assert "<svg" not in out and "One setting" in out


def test_figures_as_png(results, tmp_path):
    chromium()
    from conftest import run_cli

    figures = tmp_path / "figures"
    done = run_cli("report", "--results-dir", str(results), "-o", str(tmp_path / "r.html"),
                   "--figures", str(figures))
    assert done.returncode == 0, done.stderr
    pngs = sorted(figures.glob("*.png"))
    html = (tmp_path / "r.html").read_text()
    assert len(pngs) == html.count('<svg class="plot"') + html.count('<svg class="heatmap"')
    assert any("heatmap" in p.name for p in pngs) and any("score-vs" in p.name for p in pngs)
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 3000
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(pngs[0], ARTIFACTS / "figure-example.png")
