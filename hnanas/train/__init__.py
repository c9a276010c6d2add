"""The training engine: the one batch loop shared by search, retrain and evaluate, with its loaders, optimisers
and training paths. The retrain/evaluate/export pipeline built on it is :mod:`hnanas.pipeline`.

- :mod:`hnanas.train.loop`: ``train_epoch``, ``evaluate``, ``predict``
- :mod:`hnanas.train.epochs`: the checkpointed epoch loop of search stages and retrain (``Trainee``,
  ``run_epochs``)
- :mod:`hnanas.train.optim`: ``build_optimizer``, ``build_scheduler``, ``build_train_loss``, ``set_seed``,
  ``resolve_device``
- :mod:`hnanas.train.loaders`: seeded epoch sampling (``EpochSampler``) and evaluation loaders
- :mod:`hnanas.train.fastpath`: the training paths (fp32, channels-last, bf16) and the choice among them
"""

from hnanas.train.loop import evaluate, predict, train_epoch
from hnanas.train.optim import build_optimizer, build_scheduler, resolve_device, set_seed

__all__ = ["build_optimizer", "build_scheduler", "evaluate", "predict", "resolve_device", "set_seed", "train_epoch"]
