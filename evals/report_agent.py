"""The report's section for an agent's task: resolved rate against what an instance
costs, one point per setting, one line and colour per step limit.

An agent's settings cross step limits with token and cost limits per episode, effort
and thinking budgets (evals.config.AGENT_AXES); its spend per instance is every turn's.
The plot answers which limits buy resolved instances: x is the mean USD per instance
(``cost_per_problem`` of the accuracy row), or its mean tokens (prompt + completion,
every turn) where some price is unknown; y the resolved rate with its 95% interval.
Points of one step limit (and model) are joined in order of cost.
"""

from __future__ import annotations

from html import escape

from evals.leaderboard import spend_tokens
from evals.report_data import Group
from evals.report_svg import PALETTE, Point, fmt_cost, fmt_tokens, scatter


def is_agent(g: Group) -> bool:
    """A setting run by an agent: its records carry steps."""
    return g.cost is not None and g.cost.steps_mean is not None


def step_limit(g: Group) -> str:
    steps = g.accuracy.get("max_steps")
    return f"steps={steps}" if steps is not None else "the task's step limit"


def agent_plot(task: str, groups: list[Group], charts: list[tuple[str, str]] | None,
               stem) -> str:
    """The resolved-rate-vs-cost chart of ``task``'s agent settings (``groups`` without
    gold), or "" when it has fewer than two. ``stem`` names a chart's PNG file."""
    groups = [g for g in groups if is_agent(g)]
    if len(groups) < 2:
        return ""
    by_cost = all(g.accuracy.get("cost_per_problem") is not None for g in groups)
    models = len({g.model for g in groups}) > 1
    series = {(g.model, g.setting): f"{g.model}, {step_limit(g)}" if models else step_limit(g)
              for g in groups}
    names = sorted(set(series.values()), key=_by_steps)
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}
    points = []
    for g in groups:
        acc = g.accuracy
        x = acc.get("cost_per_problem") if by_cost else spend_tokens(acc)
        if x is None or acc.get("value") is None:
            continue
        points.append(Point(g.model, g.setting, "accuracy", 1, float(x), acc["value"],
                            acc.get("ci_low"), acc.get("ci_high")))
    axis = "cost" if by_cost else "tokens"
    svg = scatter(points, colors, title=f"{task}: resolved rate vs {axis} per instance",
                  x_label="mean USD per instance" if by_cost else
                  "mean tokens per instance (prompt + completion, every turn)",
                  fmt_x=fmt_cost if by_cost else fmt_tokens, y_label="resolved rate",
                  series=lambda p: series[(p.model, p.setting)])
    if not svg:
        return ""
    if charts is not None:
        charts.append((stem(f"{task}-resolved-vs-{axis}"), svg))
    legend = "".join(f"<span><i class=\"sw\" style=\"background:{c}\"></i>{escape(n)}</span>"
                     for n, c in colors.items())
    note = "" if by_cost else "Some costs are unknown (no price for a model): tokens instead. "
    return (f"<div class=\"plots agent\">{svg}</div><p class=\"legend\">{legend}</p>"
            f"<p class=\"note\">{escape(note)}One point per agent setting: its resolved rate "
            f"(95% interval) at its mean spend per instance, every turn of the episode "
            f"counted; a line joins the settings of one step limit in order of spend "
            f"(token and cost limits, effort, budgets). Ringed: the Pareto front.</p>")


def _by_steps(name: str) -> tuple:
    """Step limits in increasing order, the task's own (not in the setting) last."""
    model, _, steps = name.rpartition("steps=")
    return (model, 0, int(steps), name) if steps.isdigit() else (name, 1, 0, name)
