"""Baseline networks, trained and measured through the same path as searched ones (registered as model kinds in
:mod:`hnanas.nas.model_kinds`).

Importing the package registers the kinds ``dnanet`` (:mod:`hnanas.nas.baselines.dnanet`) and ``repisd``
(:mod:`hnanas.nas.baselines.repisd`) and their named specs (``dnanet``, ``dnanet_8_128``, ``repisd``).
"""

from hnanas.nas.baselines import dnanet as _dnanet  # noqa: F401  (registers "dnanet")
from hnanas.nas.baselines import repisd as _repisd  # noqa: F401  (registers "repisd")
