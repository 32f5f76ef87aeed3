"""Tools around training runs; importing this package imports none of their heavy dependencies.

- ``plot``: learning curves and trust-region diagnostics of runs (matplotlib).
- ``video``: videos of a model's episodes.
- ``export``: the deterministic policy as one ONNX graph.
- ``tune``: hyperparameter search with Optuna; ``ray_tune`` runs its trials on Ray.
- ``bench``: grids of training runs; ``ray_grid`` runs them on Ray; ``report`` aggregates them.
"""
