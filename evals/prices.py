"""Price table: cost of a call from its token usage, where the model's price is known."""

from __future__ import annotations

import fnmatch
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from evals.runner import ConfigError, Usage

BUNDLED = Path(__file__).with_name("prices.toml")
USER_DEFAULT = Path("~/.config/evals/prices.toml").expanduser()


@dataclass(frozen=True)
class Tier:
    """Prices for a call whose prompt is longer than ``above`` tokens (long-context rates)."""

    above: int
    input: float
    output: float
    cached_input: float | None = None


@dataclass(frozen=True)
class Price:
    input: float  # USD per million prompt tokens
    output: float  # USD per million completion tokens (reasoning included)
    cached_input: float | None = None  # per million prompt tokens read from cache; None: input
    long_context: tuple[Tier, ...] = ()  # the highest ``above`` under the prompt applies
    # What the provider's batch API charges, as a share of these prices (0.5: half);
    # None where the table gives none (batch work is then priced at these live rates).
    batch: float | None = None

    def cost(self, usage: Usage) -> float:
        """Cost of one call. Tiers go by that call's prompt length, so a runner that fans
        n samples out prices each call before adding them up."""
        over = [t for t in self.long_context if usage.prompt_tokens > t.above]
        rates: Price | Tier = max(over, key=lambda t: t.above) if over else self
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        cached_rate = rates.input if rates.cached_input is None else rates.cached_input
        return ((usage.prompt_tokens - cached) * rates.input + cached * cached_rate
                + usage.completion_tokens * rates.output) / 1e6

    def batch_cost(self, usage: Usage) -> float:
        """Cost of one call answered through the provider's batch API."""
        return self.cost(usage) * (1.0 if self.batch is None else self.batch)


def _price(row: dict) -> Price:
    def optional(value) -> float | None:
        return None if value is None else float(value)
    tiers = sorted((Tier(int(t["above"]), float(t["input"]), float(t["output"]),
                         optional(t.get("cached_input"))) for t in row.get("long_context", ())),
                   key=lambda t: t.above)
    return Price(float(row["input"]), float(row["output"]), optional(row.get("cached_input")),
                 tuple(tiers), optional(row.get("batch")))


def load_prices(extra: str | None = None) -> dict[str, Price]:
    """Bundled table, then the user's file (``EVALS_PRICES`` or ~/.config), later wins."""
    files = [BUNDLED, USER_DEFAULT]
    if path := (extra or os.environ.get("EVALS_PRICES")):
        files.append(Path(path).expanduser())
    table: dict[str, Price] = {}
    for file in files:
        if not file.exists():
            if file is not USER_DEFAULT and file is not BUNDLED:
                raise ConfigError(f"price table {file} does not exist")
            continue
        try:
            models = tomllib.loads(file.read_text()).get("models", {})
            for name, row in models.items():
                table[name] = _price(row)
        except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"{file}: bad price table ({e}); expected "
                              f'[models."NAME"] input = X, output = Y (optional cached_input = Z, '
                              f"long_context = [{{above = N, input = X, output = Y}}], "
                              f"batch = SHARE)") from e
    return table


def find_price(model: str, table: dict[str, Price]) -> Price | None:
    if model in table:
        return table[model]
    for pattern, price in table.items():
        if any(c in pattern for c in "*?[") and fnmatch.fnmatchcase(model, pattern):
            return price
    return None
