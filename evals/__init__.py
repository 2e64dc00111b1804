"""evals: an evaluation harness for hard LLM benchmarks.

The public plugin API is re-exported here so a task file needs one import::

    from evals import task, Task, Sample, Score
"""

from evals.task import Sample, Score, Task, TaskError, chat_prompt, task

__all__ = ["Sample", "Score", "Task", "TaskError", "chat_prompt", "task"]
__version__ = "0.1.0"
