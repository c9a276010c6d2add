"""``hnanas export``: the deploy-form ONNX model of a run (or checkpoint), checked against torch."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Export the deploy form of a trained network (re-parameterisable ops fused, Conv-BN folded, the training input
normalisation inside: the model takes raw pixel values 0..255, N x 1 x H x W, and returns logits) as one
self-contained ONNX file (torch.onnx dynamo exporter), checked against torch in ONNX Runtime.

The source: RUN/best.pt (a retrain folder), RUN/retrain/best.pt, or --checkpoint FILE; a search run without a
retrain exports its genotype.json with freshly initialised weights (for latency checks only). The input size is
the space's deployment size (256x256 for baselines) unless --size is given; --dynamic-shapes makes H and W
symbolic (any multiple of 32). Default output: export.onnx (export_dynamic.onnx) beside the source."""


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().replace("x", ",").split(",")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected H,W (e.g. 256,256), got {text!r}") from None
    if min(h, w) < 32 or h % 32 or w % 32:
        raise argparse.ArgumentTypeError(f"H and W must be positive multiples of 32, got {text!r}")
    return h, w


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export a run's deploy-form network to ONNX (checked against torch)",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", metavar="DIR", help="a retrain folder, or a run with retrain/ or genotype.json")
    source.add_argument("--checkpoint", metavar="FILE", help="a retrain checkpoint (best.pt)")
    p.add_argument("--dynamic-shapes", action="store_true", help="make height and width symbolic")
    p.add_argument("--size", type=_size, metavar="H,W", help="export (example) size (default: the deploy size)")
    p.add_argument("--out", metavar="FILE", help="output .onnx file (default: export.onnx beside the source)")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from hnanas.pipeline.export import export_run

    result = export_run(args.run, checkpoint=args.checkpoint, out=args.out, dynamic=args.dynamic_shapes,
                        size=args.size)
    print(result.summary())
    return 0
