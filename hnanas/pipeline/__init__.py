"""The pipeline after a search: retrain a network, re-parameterise it, export ONNX, time it, evaluate it.

- :mod:`hnanas.pipeline.presets`: ``RetrainConfig`` and the retrain presets
- :mod:`hnanas.pipeline.sources`: where a network comes from (a search run, a checkpoint, a baseline, a spec)
- :mod:`hnanas.pipeline.retrain`: ``start_retrain`` / ``resume_retrain``; :mod:`hnanas.pipeline.finish`: the
  steps after the last epoch (test metrics, deploy, figures)
- :mod:`hnanas.pipeline.deploy`: re-parameterise, export and time a trained network
- :mod:`hnanas.pipeline.evaluation`: metrics of a checkpoint, an ONNX model or a folder of predictions
  (scored by :mod:`hnanas.pipeline.scoring`)
- :mod:`hnanas.pipeline.export`: ``hnanas export``
- :mod:`hnanas.pipeline.budget` and :mod:`hnanas.pipeline.ledger`: many retrains under one budget, and a
  bench's committed record of them

The batch loop, loaders and optimisers it trains with are the engine in :mod:`hnanas.train`.
"""
