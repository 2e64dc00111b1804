"""``evals view``: browse runs, samples and verdicts in a local web page.

``store`` reads a run through its score index and byte offsets; ``server`` serves the
JSON endpoints and the page in ``static/`` (docs/view.md).
"""
