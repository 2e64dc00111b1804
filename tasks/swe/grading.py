"""From a parsed test log to an outcome.

Stricter than SWE-bench where the patch could game it: a FAIL_TO_PASS test
must have PASSED (or XPASS) — skipped, xfailed or missing counts as failed;
the command's exit code must agree with the statuses; a log with nothing to
parse is an infrastructure error, never a resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .parsers import ERROR, FAILED, PASSED, XFAIL, XPASS, ParsedLog

RESOLVED, UNRESOLVED, PATCH_FAILED, EMPTY_PATCH, INFRA_ERROR = (
    "resolved", "unresolved", "patch_failed", "empty_patch", "infra_error")
OUTCOMES = (RESOLVED, UNRESOLVED, PATCH_FAILED, EMPTY_PATCH, INFRA_ERROR)

F2P_OK = {PASSED, XPASS}
P2P_OK = {PASSED, XPASS, XFAIL}  # a test expected to fail before and after still "passes"
MISSING = "MISSING"


@dataclass
class Verdict:
    outcome: str
    explanation: str
    tests: dict[str, dict[str, str]] = field(default_factory=dict)  # F2P/P2P: id -> status

    @property
    def value(self) -> float:
        return 1.0 if self.outcome == RESOLVED else 0.0


def grade(parsed: ParsedLog, log: str, exit_code: int | None, timed_out: bool,
          f2p: list[str], p2p: list[str]) -> Verdict:
    tests = {"FAIL_TO_PASS": {t: parsed.statuses.get(t, MISSING) for t in f2p},
             "PASS_TO_PASS": {t: parsed.statuses.get(t, MISSING) for t in p2p}}
    if timed_out:
        return Verdict(UNRESOLVED, "the tests ran past the wall-clock limit and were killed", tests)
    if exit_code in (137, -9):
        return Verdict(UNRESOLVED, "the test command was killed (out of memory or signal 9)", tests)
    if not log.strip():
        return Verdict(INFRA_ERROR, f"empty test log (exit code {exit_code})", tests)
    if not parsed.statuses and exit_code not in (0, None) and "Traceback (most recent" in log:
        # The runner died before any result, on an error the patch can cause (a
        # SyntaxError, an import failing): the model's failure, not the sandbox's.
        last = log.strip().splitlines()[-1][:200]
        return Verdict(UNRESOLVED, f"the tests could not run (exit code {exit_code}): {last}",
                       tests)
    if not parsed.statuses:
        return Verdict(INFRA_ERROR, f"no test result could be parsed from the log "
                                    f"(exit code {exit_code})", tests)
    failing = [t for t, s in parsed.statuses.items() if s in (FAILED, ERROR)]
    if exit_code == 0 and failing:
        return Verdict(UNRESOLVED, f"exit code 0 but the log shows {len(failing)} failing "
                                   f"test(s), e.g. {failing[0]}: the log is not trustworthy", tests)
    if exit_code not in (0, None) and not failing:
        return Verdict(UNRESOLVED, f"exit code {exit_code} but no failing test in the log "
                                   f"(a crash, or forged result lines)", tests)
    if parsed.complete is False:
        return Verdict(UNRESOLVED, f"the test log is incomplete: {parsed.detail}", tests)
    bad_f2p = [t for t, s in tests["FAIL_TO_PASS"].items() if s not in F2P_OK]
    bad_p2p = [t for t, s in tests["PASS_TO_PASS"].items() if s not in P2P_OK]
    if not bad_f2p and not bad_p2p:
        return Verdict(RESOLVED, f"{len(f2p)} FAIL_TO_PASS and {len(p2p)} PASS_TO_PASS "
                                 f"tests pass", tests)
    parts = []
    if bad_f2p:
        parts.append(f"FAIL_TO_PASS {len(f2p) - len(bad_f2p)}/{len(f2p)} "
                     f"(e.g. {bad_f2p[0]}: {tests['FAIL_TO_PASS'][bad_f2p[0]]})")
    if bad_p2p:
        parts.append(f"PASS_TO_PASS {len(p2p) - len(bad_p2p)}/{len(p2p)} "
                     f"(e.g. {bad_p2p[0]}: {tests['PASS_TO_PASS'][bad_p2p[0]]})")
    return Verdict(UNRESOLVED, "; ".join(parts), tests)
