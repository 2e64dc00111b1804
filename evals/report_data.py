"""What the HTML report shows, gathered from a results directory.

Metric rows come from ``evals.leaderboard.build_rows`` (the latest run holding
each task, model and setting), so the report and ``evals leaderboard`` never
disagree.  Spend (tokens, cost, latency) and the per-category breakdowns are
computed here in one more pass over the records of exactly those runs, with
``evals.metrics.Aggregator``: the same de-duplication (last record wins), the
same error handling and the same intervals as the leaderboard.

Breakdowns are generic: no task is imported by name.  Each task declares them
(``evals.task.Breakdown``, stored in run.json): a ``tree`` (a category and its
sub-category: a table) or a ``grid`` (columns by rows, per split value: heatmaps).
Runs from before declarations are read by ``LEGACY_BREAKDOWNS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from evals.metrics import Aggregator, CostRow, GroupKey, MetricRow, assemble_rows
from evals.metrics_columnar import ColumnarMetrics
from evals.records import find_runs, iter_records
from evals.score_index import StaleIndex
from evals.task import LEGACY_BREAKDOWNS
from evals.task import Breakdown as Declared

_SEP = "\x1f"  # joins setting and category label inside a breakdown Aggregator's key


@dataclass
class Group:
    """One (task, model, setting): its leaderboard rows by metric, and its spend."""

    task: str
    model: str
    setting: str
    run: str
    status: str
    metrics: dict[str, dict] = field(default_factory=dict)
    cost: CostRow | None = None

    @property
    def key(self) -> GroupKey:
        return (self.task, self.model, self.setting)

    @property
    def accuracy(self) -> dict:
        return self.metrics["accuracy"]

    @property
    def samples(self) -> int:
        return max(1, int(self.accuracy.get("samples") or 1))

    def top(self, kind: str) -> dict | None:
        """The ``kind@K`` row with the largest K (K = N when every problem has N)."""
        rows = [r for r in self.metrics.values() if r["metric"].startswith(kind + "@")]
        return max(rows, key=lambda r: r["k"] or 0) if rows else None

    def per_generation(self, axis: str) -> float | None:
        """Mean completion tokens (``axis="tokens"``) or USD (``"cost"``) of one generation."""
        if axis == "cost":
            cost = self.accuracy.get("cost_per_problem")  # spend / scored generations, k = 1
            return None if cost is None else float(cost)
        if self.cost is None or not self.cost.completion_tokens:
            return None  # no usage recorded: nothing to place on a tokens axis
        return self.cost.completion_tokens / self.samples


@dataclass
class Breakdown:
    """Accuracy rows of one task split by what the task declares (``spec``, an
    :class:`evals.task.Breakdown`).

    ``cells[label][(model, setting)]`` is the accuracy MetricRow of the problems in that
    category.  ``kind`` is ``tree`` (labels "category" and "category / sub-category") or
    ``grid`` (labels decoded by ``grid_keys`` into (split value, column, row)).
    """

    task: str
    kind: str
    cells: dict[str, dict[tuple[str, str], MetricRow]] = field(default_factory=dict)
    grid_keys: dict[str, tuple[str, Any, Any]] = field(default_factory=dict)
    spec: Declared | None = None


@dataclass
class ReportData:
    groups: list[Group]
    breakdowns: list[Breakdown]
    runs: list[str]


class _Splitter:
    """Accuracy per metadata category: records fed one by one into per-category
    Aggregators, or a run's per-category problem values from its score index."""

    def __init__(self) -> None:
        self.aggs: dict[tuple[str, str], Aggregator] = {}
        self.indexed: dict[tuple[str, str], dict[str, dict[tuple[str, str], MetricRow]]] = {}
        self.grid_keys: dict[str, dict[str, tuple[str, Any, Any]]] = {}
        # task -> its declared breakdowns, from the run being read (declare())
        self.declared: dict[str, tuple[Declared, ...]] = {}
        self.specs: dict[tuple[str, str], Declared] = {}

    def declare(self, run_meta: Mapping[str, Any]) -> None:
        """The breakdowns the next run's tasks declared (run.json); a run from before
        declarations is read by LEGACY_BREAKDOWNS."""
        declared = run_meta.get("breakdowns")
        self.declared = {} if not isinstance(declared, dict) else {
            task: tuple(Declared.from_json(b) for b in specs)
            for task, specs in declared.items()}
        self.legacy = not isinstance(declared, dict)

    def _labels(self, task: str, meta: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(kind, label) of each breakdown cell a record with this metadata falls in."""
        out = []
        specs = LEGACY_BREAKDOWNS if getattr(self, "legacy", True) \
            else self.declared.get(task, ())
        for spec in specs:
            if spec.kind == "tree":
                top = meta.get(spec.keys[0])
                if top is None:
                    continue
                self.specs.setdefault((task, "tree"), spec)
                out.append(("tree", str(top)))
                sub = meta.get(spec.keys[1]) if len(spec.keys) > 1 else None
                if sub is not None:
                    out.append(("tree", f"{top} / {sub}"))
            elif spec.kind == "grid" and all(k in meta for k in spec.keys[:2]):
                key = (str(meta.get(spec.split) or "") if spec.split else "",
                       meta[spec.keys[0]], meta[spec.keys[1]])
                label = "|".join(map(str, key))
                self.specs.setdefault((task, "grid"), spec)
                self.grid_keys.setdefault(task, {})[label] = key
                out.append(("grid", label))
        return out

    def add(self, rec: Mapping[str, Any]) -> None:
        meta = rec.get("metadata")
        if not isinstance(meta, dict):
            return
        for kind, label in self._labels(rec["task"], meta):
            agg = self.aggs.get((rec["task"], kind))
            if agg is None:
                agg = self.aggs[(rec["task"], kind)] = Aggregator()
            # A small record: the category rides in the setting, the rest is what
            # Aggregator needs for de-duplication, errors and scores.
            agg.add({"task": rec["task"], "model": rec["model"],
                     "setting": rec["setting"] + _SEP + label, "sample_id": rec["sample_id"],
                     "gen": rec["gen"], "score": rec.get("score"), "status": rec.get("status")})

    def add_indexed(self, agg: ColumnarMetrics, wanted: set[GroupKey]) -> None:
        """The same cells from a run's score index: no record is parsed. Adds nothing
        when the index goes stale while its categories are read (StaleIndex)."""
        rows = []
        for g, key in enumerate(agg.keys):
            if key not in wanted:
                continue
            task, model, setting = key
            parts: dict[tuple[str, str], list] = {}  # (kind, label) -> values, samples, errors
            for category, (values, samples, errors) in agg.by_category(g).items():
                for cell in self._labels(task, agg.category_metadata(category)):
                    part = parts.setdefault(cell, [[], 0, 0])
                    part[0] += values
                    part[1] = max(part[1], samples)
                    part[2] += errors
            for (kind, label), (values, samples, errors) in parts.items():
                row = assemble_rows((task, model, setting + _SEP + label), agg.settings[g],
                                    samples, errors, None, values, {}, False, [], 0.95)[0]
                rows.append(((task, kind), label, (model, setting), row))
        for cell, label, column, row in rows:
            self.indexed.setdefault(cell, {}).setdefault(label, {})[column] = row

    def breakdowns(self) -> list[Breakdown]:
        out = {}
        for (task, kind), agg in self.aggs.items():
            b = out[(task, kind)] = Breakdown(task, kind,
                                              grid_keys=self.grid_keys.get(task, {}),
                                              spec=self.specs.get((task, kind)))
            for row in agg.metric_rows(ks=[]):  # ks=[]: accuracy only
                setting, _, label = row.setting.partition(_SEP)
                b.cells.setdefault(label, {})[(row.model, setting)] = row
        for (task, kind), cells in self.indexed.items():
            b = out.setdefault((task, kind), Breakdown(
                task, kind, grid_keys=self.grid_keys.get(task, {}),
                spec=self.specs.get((task, kind))))
            for label, by_column in cells.items():
                b.cells.setdefault(label, {}).update(by_column)
        return [out[k] for k in sorted(out)]


def collect(results_dir: Path, tasks: list[str] | None = None,
            models: list[str] | None = None) -> ReportData:
    from evals.leaderboard import build_rows

    groups: dict[GroupKey, Group] = {}
    aggregates: dict[str, Any] = {}
    rows = build_rows(Path(results_dir), tasks=tasks, models=models, aggregates=aggregates)
    for r in rows:
        if r["metric"] == "accuracy":
            groups[(r["task"], r["model"], r["setting"])] = Group(
                r["task"], r["model"], r["setting"], r["run"], r["status"])
    for r in rows:
        g = groups.get((r["task"], r["model"], r["setting"]))
        # Only rows of the run the accuracy row came from: a later, smaller run must
        # not pair its accuracy with an older run's pass@64.
        if g is not None and r["run"] == g.run:
            g.metrics[r["metric"]] = r
    by_run: dict[str, set[GroupKey]] = {}
    for g in groups.values():
        by_run.setdefault(g.run, set()).add(g.key)
    splitter = _Splitter()
    for log in find_runs(Path(results_dir)):
        wanted = by_run.get(log.dir.name)
        if not wanted:
            continue
        splitter.declare(log.read_meta())
        indexed = aggregates.get(log.dir.name)
        costs = None
        if isinstance(indexed, ColumnarMetrics):  # a big run: its index has it all
            try:
                splitter.add_indexed(indexed, wanted)
                costs = indexed.cost_rows()
            except StaleIndex:  # the file changed under the report: read the JSON
                pass
        if costs is None:
            costs = Aggregator().update(_split(iter_records(log.samples_path), wanted,
                                               splitter)).cost_rows()
        for key in wanted:
            groups[key].cost = costs.get(key)
    ordered = sorted(groups.values(), key=lambda g: (
        g.task, g.model, g.per_generation("tokens") or 0.0, g.setting))
    return ReportData(ordered, splitter.breakdowns(), sorted(by_run))


def _split(records: Iterator[dict[str, Any]], wanted: set[GroupKey],
           splitter: _Splitter) -> Iterator[dict[str, Any]]:
    """The records of the wanted groups, each also handed to the breakdowns."""
    for rec in records:
        if (rec["task"], rec["model"], rec["setting"]) in wanted:
            splitter.add(rec)
            yield rec
