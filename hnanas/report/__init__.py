"""Reports and sweeps: Pareto data (computed) and figures (drawn), run tables, Optuna sweeps.

- :mod:`hnanas.report.runs`: finding and reading run folders (``find_runs``, ``RunRecord``)
- :mod:`hnanas.report.data`: ``run_latencies``, ``pareto_points``, ``pareto_front``, ``runs_table``
- :mod:`hnanas.report.architecture`: ``architecture_layout`` (the derived network's grid, edges, latency shares)
- :mod:`hnanas.report.figures`: drawing (matplotlib, Agg, imported lazily)
- :mod:`hnanas.report.markdown`: table and summary text
- :mod:`hnanas.report.build`: ``write_report`` (``hnanas report``)
- :mod:`hnanas.report.sweep`: ``run_sweep`` (``hnanas sweep``), with :mod:`hnanas.report.study` (Optuna storage,
  claims of sweep points, liveness of workers)
"""
