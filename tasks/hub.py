"""Loading a dataset from the Hugging Face hub, with offline mode honoured and one error shape.

``datasets`` is imported only here and only when a hub dataset is loaded.
"""

from __future__ import annotations

import os
from typing import Any

from evals.task import TaskError, is_true

OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def offline_requested() -> bool:
    """HF_HUB_OFFLINE / HF_DATASETS_OFFLINE (or TRANSFORMERS_OFFLINE) set now."""
    return any(is_true(os.environ.get(v, "").strip()) for v in OFFLINE_VARS)


class _Offline:
    """Make an offline request made after ``datasets`` was imported count.

    ``datasets`` and ``huggingface_hub`` read the offline variables once, at
    import; this sets their flags for the duration of one load, then restores them.
    """

    def __init__(self, active: bool):
        self.active = active
        self.saved: list[tuple[Any, str, Any]] = []

    def __enter__(self):
        if not self.active:
            return self
        import datasets.config as dconfig
        targets = [(dconfig, "HF_HUB_OFFLINE"), (dconfig, "HF_DATASETS_OFFLINE")]
        try:
            import huggingface_hub.constants as hconst
            targets.append((hconst, "HF_HUB_OFFLINE"))
        except ImportError:  # pragma: no cover - datasets depends on it
            pass
        for module, name in targets:
            if hasattr(module, name):
                self.saved.append((module, name, getattr(module, name)))
                setattr(module, name, True)
        return self

    def __exit__(self, *exc):
        for module, name, value in reversed(self.saved):
            setattr(module, name, value)
        return False


def load_dataset(task: str, name: str, config: str | None, split: str, *, what: str,
                 hint: str, revision: str | None = None, cache_dir: str | None = None) -> Any:
    """``datasets.load_dataset(name, config, split=...)``, or a one-line TaskError that
    names the task and ``what`` it loads and ends with ``hint`` (what to do instead)."""
    try:
        import datasets
    except ImportError:
        raise TaskError(f"{task}: loading from the hub needs the `datasets` package "
                        f"(pip install 'evals[data]'); {hint}") from None
    offline = offline_requested()
    try:
        with _Offline(offline):
            extra = {k: v for k, v in (("revision", revision), ("cache_dir", cache_dir)) if v}
            return datasets.load_dataset(name, config, split=split, **extra)
    except Exception as e:  # noqa: BLE001 - offline, missing, gated: one message
        detail = (str(e).strip().splitlines() or [""])[0][:300]
        why = (" (offline mode is on: HF_HUB_OFFLINE/HF_DATASETS_OFFLINE, and no cached copy "
               "was found)" if offline else "")
        raise TaskError(f"{task}: cannot load {what} from the Hugging Face hub{why}: "
                        f"{type(e).__name__}: {detail}. {hint}") from None
