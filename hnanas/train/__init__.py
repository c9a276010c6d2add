"""Training: the one batch loop shared by search, retrain and evaluate, and the retrain/evaluate/export pipeline.

- :mod:`hnanas.train.loop`: ``train_epoch``, ``evaluate``, ``predict`` (+ ``build_optimizer``,
  ``build_scheduler``, ``set_seed`` from :mod:`hnanas.train.optim`)
- :mod:`hnanas.train.retrain`: ``start_retrain`` / ``resume_retrain`` with :mod:`hnanas.train.presets`
- :mod:`hnanas.train.deploy`: re-parameterise, export and time a trained network
- :mod:`hnanas.train.evaluation`: metrics of a checkpoint, an ONNX model or a folder of predictions
- :mod:`hnanas.train.export`: ``hnanas export``
"""

from hnanas.train.loop import evaluate, predict, train_epoch
from hnanas.train.optim import build_optimizer, build_scheduler, resolve_device, set_seed

__all__ = ["build_optimizer", "build_scheduler", "evaluate", "predict", "resolve_device", "set_seed", "train_epoch"]
