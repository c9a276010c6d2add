"""Sweeps: one search + retrain per value of the latency weight or target, shared by workers through one Optuna
study, then a report over the points.

- :mod:`hnanas.sweep.run`: ``SweepConfig``, ``run_sweep`` (``hnanas sweep``) and the sweep's report.
- :mod:`hnanas.sweep.study`: the Optuna storage, claims of sweep points, liveness of workers (heartbeats).
"""
