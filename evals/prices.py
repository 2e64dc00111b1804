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
class Price:
    input: float  # USD per million prompt tokens
    output: float  # USD per million completion tokens (reasoning included)

    def cost(self, usage: Usage) -> float:
        return (usage.prompt_tokens * self.input + usage.completion_tokens * self.output) / 1e6


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
                table[name] = Price(float(row["input"]), float(row["output"]))
        except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"{file}: bad price table ({e}); expected "
                              f'[models."NAME"] input = X, output = Y') from e
    return table


def find_price(model: str, table: dict[str, Price]) -> Price | None:
    if model in table:
        return table[model]
    for pattern, price in table.items():
        if any(c in pattern for c in "*?[") and fnmatch.fnmatchcase(model, pattern):
            return price
    return None
