"""The search (``hnanas search``): a run folder and its context (``run``, ``context``), then a strategy from the
registry (``strategy``, ``strategies``) turns data, space and latency table into a genotype (``outputs``).
Built in: ``two-stage`` (the default, differentiable: stage 1 prunes the nested topology over ``supernet``'s
supernets, stage 2 picks each node's op, both trading segmentation loss against the table's expected latency)
and ``halving`` (stand-alone candidates in a latency band, successive halving on validation IoU)."""
