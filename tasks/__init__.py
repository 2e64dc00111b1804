"""Built-in task plugins. Each package registers its tasks with ``@task`` on import;
imports here stay cheap (no datasets, torch or docker at module level)."""

from tasks import arithmetic, gpqa, math, needle, swe  # noqa: F401
