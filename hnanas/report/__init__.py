"""Reports: Pareto data (computed) and figures (drawn), run tables. A report only reads run folders.

- :mod:`hnanas.report.runs`: finding and reading run folders (``find_runs``, ``RunRecord``)
- :mod:`hnanas.report.data`: ``run_latencies``, ``pareto_points``, ``pareto_front``, ``runs_table``
- :mod:`hnanas.report.architecture`: ``architecture_layout`` (the derived network's grid, edges, latency shares)
- :mod:`hnanas.report.figures`: drawing (matplotlib, Agg, imported lazily)
- :mod:`hnanas.report.markdown`: table and summary text
- :mod:`hnanas.report.build`: ``write_report`` (``hnanas report``)

Sweeps (which run searches and retrains, then report on them) are :mod:`hnanas.sweep`.
"""
