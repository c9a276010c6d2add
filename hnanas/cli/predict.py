"""``hnanas predict``: run a trained network on your own images."""

from __future__ import annotations

import argparse

from hnanas.cli.common import add_deprecated_alias

DESCRIPTION = """\
Run a trained network on image files, folders or glob patterns (PNG, BMP, JPEG, TIFF; 8/16-bit, gray or colour;
any size: padded as `evaluate` pads, predicted at the input's size).

  --model RUN          a retrain run folder (RUN/best.pt or RUN/retrain/best.pt), run with torch
  --model best.pt      a retrain checkpoint, run with torch
  --model model.onnx   an exported model, run with ONNX Runtime only (no model code needed)

Writes OUT/<name>.png (0/255 mask; `hnanas evaluate --pred OUT` scores such a folder), with --overlay
OUT/overlays/<name>.png (the image with each detected target outlined), and OUT/detections.csv: one row per
8-connected target (image, target, centroid x/y, area_px, bounding box x0 y0 x1 y1, max_score, mean_score).
An unreadable image is reported by name and skipped (--strict: stop with an error).

  hnanas predict --model runs/demo/retrain IMAGES/ --out preds --overlay"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("predict", help="run a trained network on your own images (masks, overlays, CSV)",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    p.add_argument("--model", required=True, metavar="RUN|best.pt|model.onnx", help="the network to run")
    p.add_argument("--out", default="predictions", help="output folder (default: %(default)s)")
    p.add_argument("--threshold", type=float, default=None,
                   help="probability above which a pixel is target (default: the threshold the model's retrain "
                        "chose on validation (--select-threshold), else 0.5)")
    p.add_argument("--overlay", action="store_true", help="also write OUT/overlays/<name>.png")
    p.add_argument("--torch-device", dest="device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="torch device for a checkpoint; cuda runs an .onnx model on the CUDA provider "
                        "(default: %(default)s)")
    p.add_argument("--batch", type=int, default=8, help="images of one size per torch step (default %(default)s)")
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable image instead of skipping it")
    add_deprecated_alias(p, "--device", "--torch-device")
    p.set_defaults(func=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    from hnanas.errors import HnanasError
    from hnanas.pipeline.evaluation import resolve_threshold
    from hnanas.predict import expand_inputs, load_model, predict_images

    if args.batch < 1:
        raise HnanasError(f"predict: --batch must be at least 1, got {args.batch}")
    inputs = expand_inputs(args.inputs)
    model = load_model(args.model, device=args.device, batch=args.batch)
    threshold = resolve_threshold(args.threshold, model.source, "predict")
    result = predict_images(model, inputs, args.out, threshold=threshold, with_overlay=args.overlay,
                            strict=args.strict)
    rate = result.images / result.seconds if result.seconds > 0 else float("inf")
    print(f"predicted {result.images} image(s) with {model.source} ({model.kind}): {result.targets} target(s) "
          f"-> {args.out}/ ({args.out}/detections.csv); {rate:.1f} img/s")
    if result.skipped:
        print(f"skipped {len(result.skipped)} unreadable image(s): " + "; ".join(result.skipped[:5])
              + (" ..." if len(result.skipped) > 5 else ""))
    return 0
