"""Candidate operations of the supernet: one registry, plain and re-parameterisable ops, one re-param contract,
MAC and parameter counting. Importing the package registers every built-in op.

- ``build_op(name, c_in, c_out, stride=1, *, deploy=False)``, ``list_ops()``, ``op_info(name)``, ``register_op``
- ``reparameterize_model(model, inplace=False)``; modules implement ``reparameterize()`` (idempotent) and, where
  they fuse into one conv, ``get_equivalent_kernel_bias()`` (differentiable)
- ``count_macs(module, input_shape)``, ``count_params(module)``
- ``ConvBN``: the Conv-BN pair that folds on ``reparameterize()`` (use it for any conv+BN outside the ops, e.g. in
  network stems and heads, so a deployed network has no BatchNorm left)
"""

from hnanas.ops import plain as _plain  # noqa: F401  (registers the plain ops)
from hnanas.ops import reparam_ops as _reparam_ops  # noqa: F401  (registers the re-param ops)
from hnanas.ops.blocks import ConvBN
from hnanas.ops.counting import count_macs, count_params
from hnanas.ops.fusion import has_batchnorm, reparameterize_model
from hnanas.ops.registry import OpInfo, build_op, list_ops, op_info, register_op, unregister_op

__all__ = ["ConvBN", "OpInfo", "build_op", "count_macs", "count_params", "has_batchnorm", "list_ops", "op_info",
           "register_op", "reparameterize_model", "unregister_op"]
