"""Test-log parsers: a log's text to ``{test id: status}``.

Built in: ``unittest`` (``python -m unittest -v``) and ``pytest`` (``pytest
-rA``, as SWE-bench runs it), in :data:`LOG_PARSERS`. Any other name is looked up among the
``swebench`` package's parsers (``parse_log_django``, or a repository's
``owner/name``), imported only then. Each built-in parser also reports
whether the runner's own summary agrees with the lines it parsed: forged
result lines printed by the code under test rarely come with a matching
summary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from evals.registry import KINDS, Registry

PASSED, FAILED, ERROR, SKIPPED, XFAIL, XPASS = (
    "PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS")
STATUSES = (PASSED, FAILED, ERROR, SKIPPED, XFAIL, XPASS)


@dataclass
class ParsedLog:
    statuses: dict[str, str] = field(default_factory=dict)
    complete: bool | None = None  # the runner's summary matches the lines; None: unknown
    detail: str = ""


# ---------------------------------------------------------------- unittest

_UT_HEAD = re.compile(r"^(\w+) \(([\w.]+)\)(?: \.\.\. (.*))?$")
_UT_STATUS = {"ok": PASSED, "FAIL": FAILED, "ERROR": ERROR, "expected failure": XFAIL,
              "unexpected success": XPASS}
_UT_RAN = re.compile(r"^Ran (\d+) tests? in [\d.]+s$")
_UT_END = re.compile(r"^(OK|FAILED)(?: \((.*)\))?$")


def _ut_status(text: str) -> str | None:
    text = text.strip()
    if text.startswith("skipped"):
        return SKIPPED
    return _UT_STATUS.get(text)


def _ut_id(method: str, where: str) -> str:
    # 3.11+ prints the full id in the parentheses; older versions only the class.
    return where if where.endswith("." + method) else f"{where}.{method}"


def parse_unittest(log: str) -> ParsedLog:
    out = ParsedLog()
    pending: str | None = None
    ran = None
    verdict = None
    for raw in log.splitlines():
        line = raw.rstrip()
        head = _UT_HEAD.match(line)
        if head:
            test_id = _ut_id(head.group(1), head.group(2))
            status = _ut_status(head.group(3)) if head.group(3) is not None else None
            if status:
                out.statuses[test_id] = status
                pending = None
            else:  # a docstring line or the test's own output comes before the status
                pending = test_id
            continue
        if pending is not None:
            tail = line.rsplit(" ... ", 1)[-1] if " ... " in line else line
            status = _ut_status(tail)
            if status:
                out.statuses[pending] = status
                pending = None
                continue
        if m := _UT_RAN.match(line):
            ran = int(m.group(1))
        elif ran is not None and (m := _UT_END.match(line)):
            verdict = m.group(1)
    if ran is None or verdict is None:
        out.complete = False
        out.detail = "no unittest summary (Ran N tests / OK|FAILED)"
    elif ran != len(out.statuses):
        out.complete = False
        out.detail = f"the summary says {ran} tests ran, the log shows {len(out.statuses)}"
    else:
        failed = any(s in (FAILED, ERROR, XPASS) for s in out.statuses.values())
        out.complete = (verdict == "FAILED") == failed
        out.detail = "" if out.complete else f"summary {verdict} disagrees with the test lines"
    return out


# ---------------------------------------------------------------- pytest

_PT_SUMMARY = re.compile(r"^=+ (.*\d+ (?:passed|failed|error|errors|skipped|xfailed|xpassed|"
                         r"deselected|warnings?).*) in [\d.]+s.*=+$")
_PT_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)")


_PT_SHORT = re.compile(r"^=+ short test summary info =+$")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def last_short_summary(log: str) -> str:
    """The log from pytest's last ``short test summary info`` header on (all of it when
    there is none). The captured output that ``-rA`` prints before it can hold other
    pytest runs' result lines (pytest's own suite runs pytest inside its tests, and
    prints their summaries): they are not this run's results."""
    lines = log.splitlines()
    starts = [i for i, line in enumerate(lines) if _PT_SHORT.match(_ANSI.sub("", line).strip())]
    return "\n".join(lines[starts[-1]:]) + "\n" if starts else log


def parse_pytest(log: str) -> ParsedLog:
    """``pytest -rA``: the short summary's ``STATUS nodeid`` lines (as SWE-bench reads them),
    from the last short summary on (:func:`last_short_summary`)."""
    out = ParsedLog()
    summary: dict[str, int] | None = None
    for raw in last_short_summary(log).splitlines():
        line = raw.strip()
        for status in STATUSES:
            if line.startswith(status + " "):
                parts = line[len(status) + 1:].split(" - ")[0].split()
                if parts and not parts[0].startswith("["):  # SKIPPED [1] file:line: reason
                    out.statuses[parts[0]] = status
                break
        if m := _PT_SUMMARY.match(line):
            summary = {}
            for n, word in _PT_COUNT.findall(m.group(1)):
                key = {"errors": "error"}.get(word, word)
                summary[key] = summary.get(key, 0) + int(n)
    if summary is None:
        out.complete = False
        out.detail = "no pytest summary line"
        return out
    seen = {s: sum(1 for v in out.statuses.values() if v == s) for s in STATUSES}
    want = {PASSED: "passed", FAILED: "failed", XFAIL: "xfailed", XPASS: "xpassed"}
    bad = [f"{name} {summary.get(name, 0)} vs {seen[s]}" for s, name in want.items()
           if summary.get(name, 0) != seen[s]]
    out.complete = not bad
    out.detail = "summary disagrees with the test lines: " + ", ".join(bad) if bad else ""
    return out


# Log parsers by name (a spec's ``log_parser``); packages add theirs through the
# evals.log_parsers entry points. SWE-bench's own are found by name when it is installed.
LOG_PARSERS: Registry[Callable[[str], ParsedLog]] = KINDS.register("log-parser", Registry(
    "log parser", "evals.log_parsers", {"unittest": "tasks.swe.parsers:parse_unittest",
                                        "pytest": "tasks.swe.parsers:parse_pytest"},
    error=KeyError))


def _swebench_parser(name: str, repo: str | None) -> Callable[[str, Any], dict[str, str]] | None:
    try:
        from swebench.harness import log_parsers
        from swebench.harness.log_parsers import MAP_REPO_TO_PARSER
    except Exception:  # noqa: BLE001 - not installed, or broken: not available
        return None
    if name and name in MAP_REPO_TO_PARSER:
        return MAP_REPO_TO_PARSER[name]
    for module in [log_parsers, *(getattr(log_parsers, m, None) for m in ("python",))]:
        if name and module is not None and callable(getattr(module, name, None)):
            return getattr(module, name)
    if repo and repo in MAP_REPO_TO_PARSER:
        return MAP_REPO_TO_PARSER[repo]
    return None


def known(name: str, repo: str | None = None) -> bool:
    return name in LOG_PARSERS or _swebench_parser(name, repo) is not None


def parse(name: str, log: str, repo: str | None = None, test_spec: Any = None) -> ParsedLog:
    """Parse with the named parser; raises KeyError when it is unknown."""
    if name in LOG_PARSERS:
        return LOG_PARSERS.get(name)(log)
    fn = _swebench_parser(name, repo)
    if fn is None:
        raise LOG_PARSERS.unknown(name, "; others need the swebench package")
    raw = fn(last_short_summary(log), test_spec)
    statuses = {k: str(getattr(v, "value", v)) for k, v in raw.items()}
    return ParsedLog(statuses, None, "parsed by swebench." + getattr(fn, "__name__", name))
