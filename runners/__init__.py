"""Model backends. Each module registers one family through the ``evals.runners`` entry points."""
