"""A training run end to end, as ``natgrad train`` does it.

- ``training``: build or resume a model, learn, checkpoint, evaluate, into a new run directory.
- ``directories``: run directories, checkpoints in them, and the lineage of resumed runs.
- ``logger``: metrics to CSV and TensorBoard, and the progress bar.
- ``callbacks``: ready ``learn`` callbacks (evaluation, checkpoints, stopping).
- ``evaluation``: returns of a model on fresh episodes.
"""
