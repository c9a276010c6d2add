"""The differentiable two-stage search: stage 1 prunes the nested topology, stage 2 picks each node's op, both
trading segmentation loss against expected latency from a measured table (``hnanas search``)."""
