"""The networks hnanas trains: what a network of the search is, from the space file to the module that runs,
and the hand-designed baselines it is compared with.

- :mod:`hnanas.nas.space`: search spaces (nested UNet++/DNANet-style graphs, their nodes' candidate ops), loaded
  from YAML files.
- :mod:`hnanas.nas.genotype`: a found architecture as data (kept edges and one op per node), sampled, pruned,
  saved and loaded.
- :mod:`hnanas.nas.network`: the discrete network a genotype derives from its space.
- :mod:`hnanas.nas.model_kinds` and :mod:`hnanas.nas.models`: model specs (a derived network or a registered
  baseline) and ``build_model``; checkpoints store the spec.
- :mod:`hnanas.nas.baselines`: DNANet and a RepISD-Net-style network, registered as model kinds.

The supernets the search trains live with the search (:mod:`hnanas.search.supernet`).
"""
