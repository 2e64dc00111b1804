"""A private task plugin: capital cities, exact match after normalisation.

Load it without touching the evals repo:
    evals run capitals --tasks-dir docs/examples --model openai/gpt-4o-mini
    evals validate capitals --tasks-dir docs/examples
"""

from evals import Sample, Score, Task, task

CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Kenya": "Nairobi", "Peru": "Lima",
            "Canada": "Ottawa", "Australia": "Canberra"}

SYSTEM = "Answer with the city name only."


def prompt(sample: Sample) -> list[dict]:
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"What is the capital of {sample.input}?"}]


def score(sample: Sample, completion: str) -> Score:
    answer = completion.strip().rstrip(".").strip().lower()
    if not answer:
        return Score(0.0, None, "empty answer", status="no_answer")
    return Score(float(answer == sample.target.lower()), answer)


@task
def capitals(countries: str = "all") -> Task:
    """Capital cities of a few countries (the docs/tasks.md example)."""
    names = list(CAPITALS) if countries == "all" else [c.strip() for c in countries.split(",")]
    samples = [Sample(id=name.lower(), input=name, target=CAPITALS[name]) for name in names]
    return Task(dataset=samples, prompt=prompt, scorer=score)
