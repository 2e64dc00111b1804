"""GPQA: graduate-level, "Google-proof" multiple-choice science questions.

``evals run gpqa`` loads the gated hub dataset (``Idavidrein/gpqa``);
``-T path=FILE`` reads a local CSV/JSONL in GPQA's own columns and
``-T path=sample`` the bundled demo questions (written for this project, not
real GPQA items). Prompt and scorer are the shared multiple-choice ones
(:mod:`tasks.multiple_choice`); docs/gpqa.md describes the prompts, the extraction rules,
the shuffle and the vote identity.

Importing this package is cheap: ``datasets`` is imported only when the hub
dataset is loaded.
"""

from __future__ import annotations

from evals.task import Breakdown, Sample, Task, TaskError, task
from tasks.multiple_choice import (COT_TEMPLATE, DIRECT_TEMPLATE, make_prompt, multiple_choice,
                                   score)

from .data import (LETTERS, OPTION_IDS, SAMPLE_FILE, SAMPLE_NAMES, SUBSETS, Record,
                   correct_letter, load_hub, permutation, read_file)
from .metrics import breakdown

__all__ = ["gpqa", "make_sample", "make_samples", "make_prompt", "load_records", "score",
           "breakdown", "permutation", "correct_letter", "COT_TEMPLATE", "DIRECT_TEMPLATE",
           "OPTION_IDS", "SUBSETS"]


def make_sample(record: Record, seed: int, source: str = "") -> Sample:
    """One record as a sample, options shuffled by ``permutation(record_id, seed)``.

    ``input`` is the question; the prompt function renders it with the
    shuffled options (``metadata["choices"]``, in letter order).
    """
    perm = permutation(record.record_id, seed)
    letter = LETTERS[perm.index(0)]
    return Sample(
        id=record.record_id,
        input=record.question,
        target=letter,
        metadata={"domain": record.domain, "subdomain": record.subdomain,
                  "choices": [record.options[i] for i in perm],
                  "choice_ids": [OPTION_IDS[i] for i in perm], "source": source},
        solution=f"ANSWER: {letter}")


def make_samples(records: list[Record], seed: int, source: str = "") -> list[Sample]:
    return [make_sample(r, seed, source) for r in records]


def normalize_subset(subset: str) -> str:
    s = subset.strip().lower()
    s = s[len("gpqa_"):] if s.startswith("gpqa_") else s
    if s not in SUBSETS:
        raise TaskError(f"gpqa: -T subset={subset!r} must be one of {', '.join(SUBSETS)}")
    return s


def load_records(subset: str = "diamond", path: str | None = None) -> tuple[list[Record], str]:
    """``(records, source)`` from ``path`` (a file, or ``sample``) or the hub."""
    if path:
        if path.strip().lower() in SAMPLE_NAMES:
            return read_file(SAMPLE_FILE), "sample"
        return read_file(path), path
    return load_hub(subset), f"hub:gpqa_{subset}"


@task
def gpqa(subset: str = "diamond", path: str | None = None, shuffle_seed: int = 0,
         cot: bool = True, template: str | None = None, truncated: str = "no_answer") -> Task:
    """GPQA graduate-level science multiple choice (diamond/main/extended; path=sample offline)."""
    subset = normalize_subset(subset)

    def dataset() -> list[Sample]:
        records, source = load_records(subset, path)
        return make_samples(records, shuffle_seed, source)

    return multiple_choice(dataset, template=template, cot=cot, truncated=truncated,
                           task="gpqa", breakdowns=(Breakdown(
                               "tree", ("domain", "subdomain"), ("domain", "subdomain")),))
