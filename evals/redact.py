"""Keep secrets out of run.json, records, logs and the cache."""

from __future__ import annotations

import os
import re

_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.I)
_SECRET_SHAPE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,}|hf_[A-Za-z0-9]{16,}|Bearer\s+\S+)")


def _env_secrets() -> list[str]:
    return [v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 8]


def scrub(text: str) -> str:
    """Replace secret values from the environment and key-shaped strings with ***."""
    for value in _env_secrets():
        if value in text:
            text = text.replace(value, "***")
    return _SECRET_SHAPE.sub("***", text)


def scrub_options(options: dict[str, str]) -> dict[str, str]:
    return {k: ("***" if _SECRET_NAME.search(k) else scrub(str(v))) for k, v in options.items()}
