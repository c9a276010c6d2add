"""``hnanas evaluate``: metrics of a checkpoint, an ONNX model or a folder of predictions on a test split."""

from __future__ import annotations

import argparse
import logging

from hnanas.cli.common import add_dataset_options, add_deprecated_alias

log = logging.getLogger(__name__)

DESCRIPTION = """\
IoU, nIoU, Pd and Fa (threshold 0.5, or the one the model's retrain chose on validation; 8-connected targets,
centroid distance < 3 px, Fa per pixel over the true image sizes) on the test list of a split.

  --checkpoint best.pt      a retrain checkpoint (torch; the model is rebuilt from the spec it stores)
  --checkpoint model.onnx   an exported model, run with ONNX Runtime on each image padded to a multiple of 32
  --pred DIR                a folder of <id>.png predictions (8-bit, > 127 is target, the image's size)

With a checkpoint and no --dataset, the checkpoint's training dataset and split are used. --save-pred writes
the thresholded predictions as <id>.png (0/255), which --pred scores back to the same numbers."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="IoU/nIoU/Pd/Fa of a checkpoint, ONNX model or prediction folder",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", metavar="FILE", help="best.pt of a retrain, or an exported .onnx model")
    source.add_argument("--pred", metavar="DIR", help="folder of <id>.png predictions to score")
    add_dataset_options(p)
    p.add_argument("--threshold", type=float, default=None,
                   help="probability above which a pixel is target (model inputs only; default: the threshold "
                        "the model's retrain chose on validation (--select-threshold), else 0.5)")
    p.add_argument("--save-pred", metavar="DIR", help="write each prediction as DIR/<id>.png (0/255)")
    p.add_argument("--torch-device", dest="device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="torch device for a .pt checkpoint (default: %(default)s)")
    p.add_argument("--json", metavar="FILE", help="also write the metrics as JSON (fractions; fa per pixel)")
    add_deprecated_alias(p, "--device", "--torch-device")
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from hnanas.errors import HnanasError
    from hnanas.fileio import json_safe, write_json
    from hnanas.metrics import format_metrics
    from hnanas.pipeline.evaluation import (evaluate_model_file, evaluate_predictions, open_eval_dataset,
                                            resolve_threshold)

    policy = args.on_mismatch or "resize"
    if args.pred:
        if args.save_pred:
            raise HnanasError("evaluate: --save-pred needs --checkpoint (with --pred the predictions exist already)")
        index, split = open_eval_dataset(args.dataset, args.data_root, None)
        metrics = evaluate_predictions(args.pred, index, args.split, on_mismatch=policy)
        what = args.pred
    else:
        threshold = resolve_threshold(args.threshold, args.checkpoint, "evaluate")
        index, split = open_eval_dataset(args.dataset, args.data_root, args.checkpoint)
        metrics = evaluate_model_file(args.checkpoint, index, args.split or split, on_mismatch=policy,
                                      threshold=threshold, save_pred=args.save_pred, device=args.device)
        what = args.checkpoint
    print(format_metrics(metrics, title=f"{what} on {metrics['dataset']} ({metrics['split']}, test)"))
    if args.save_pred:
        log.info("wrote %d predictions to %s", metrics["n_images"], args.save_pred)
    if args.json:
        write_json(args.json, json_safe(metrics))
        log.info("wrote %s", args.json)
    return 0
