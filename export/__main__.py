"""Command line for the model exports.

    python -m export classifier   classifier checkpoint -> ONNX + manifest, with a parity check
    python -m export int8         FP32 classifier export -> INT8 ONNX + manifest
    python -m export price        price pipeline -> ONNX + manifest

Run `python -m export COMMAND --help` for the options of each command. Each command
prints the path of the manifest it wrote.
"""

import argparse
import importlib
import logging
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "runs" / "export"
PRICE_MODULE = "export.price"
DATA_ROOT_ENV = "FPS_DATA_ROOT"

# Loggers of the ONNX exporter's optimisation passes, which log every pass at INFO.
NOISY_LOGGERS = ("onnxscript", "onnx_ir", "torch.onnx")


def add_classifier_command(subparsers) -> None:
    parser = subparsers.add_parser("classifier", help="export a classifier checkpoint to ONNX with a parity check")
    parser.add_argument("--checkpoint", type=Path, required=True, help="model.pt of a training run, or the run folder that contains it")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT / "fashion_classifier", help="folder for model.onnx and manifest.json (default: %(default)s)")
    parser.add_argument(
        "--images", type=Path, default=None,
        help="folder of JPEG photos for the parity check, of which 7 are used (default: the bundled sample's hm/images)",
    )
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset version (default: 18)")
    parser.add_argument("--model-version", default="1.0", help="model version written to the manifest (default: %(default)s)")
    parser.set_defaults(handler=run_classifier)


def run_classifier(args) -> int:
    from export.classifier import DEFAULT_OPSET, PARITY_BATCH_SIZES, export_classifier, list_photos
    from training.checkpoint import CHECKPOINT_NAME

    checkpoint = args.checkpoint / CHECKPOINT_NAME if args.checkpoint.is_dir() else args.checkpoint
    parity_images = None if args.images is None else list_photos(args.images, max(PARITY_BATCH_SIZES))
    manifest = export_classifier(
        checkpoint,
        args.out,
        parity_images=parity_images,
        opset=args.opset or DEFAULT_OPSET,
        model_version=args.model_version,
    )
    print(manifest)
    return 0


def add_int8_command(subparsers) -> None:
    parser = subparsers.add_parser("int8", help="quantize an FP32 classifier export to INT8 with calibration on training photos")
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_OUT / "fashion_classifier", help="FP32 export folder with model.onnx and manifest.json (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT / "fashion_classifier_int8", help="folder for the INT8 model.onnx and manifest.json (default: %(default)s)")
    parser.add_argument(
        "--data-root", type=Path, default=None,
        help=f"data root that contains hm/, whose training-split photos calibrate the model (default: ${DATA_ROOT_ENV}, else ../shared/data beside the repository)",
    )
    parser.add_argument("--count", type=int, default=100, help="number of calibration photos (default: %(default)s)")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="validation share of the training run's split, excluded from calibration (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the training run's split (default: %(default)s)")
    parser.add_argument(
        "--format", dest="quant_format", choices=("qdq", "qoperator"), default="qdq",
        help="ONNX quantization format: QuantizeLinear/DequantizeLinear pairs (qdq) or integer operators (qoperator) (default: %(default)s)",
    )
    parser.add_argument("--activation-type", choices=("uint8", "int8"), default="uint8", help="activation data type, while weights are always int8 (default: %(default)s)")
    parser.set_defaults(handler=run_int8)


def run_int8(args) -> int:
    from export.manifest import read_manifest
    from export.quantize import quantize_classifier, training_photos
    from training.data import resolve_data_root

    labels = read_manifest(args.model_dir)["labels"]
    photos = training_photos(resolve_data_root(args.data_root), labels, args.val_fraction, args.seed)
    manifest = quantize_classifier(
        args.model_dir,
        photos,
        args.out,
        count=args.count,
        quant_format=args.quant_format,
        activation_type=args.activation_type,
    )
    print(manifest)
    return 0


def add_price_command(subparsers) -> None:
    # The price export is imported only when the command is built, because it pulls in
    # scikit-learn and skl2onnx, which the other commands do not need.
    try:
        price = importlib.import_module(PRICE_MODULE)
    except ModuleNotFoundError as error:
        if error.name != PRICE_MODULE:
            raise
        parser = subparsers.add_parser("price", help=f"export the price pipeline (not available: {PRICE_MODULE} is missing)")
        parser.set_defaults(handler=_price_missing)
        return

    parser = subparsers.add_parser("price", help="export the price pipeline to ONNX with a parity check")
    if hasattr(price, "add_arguments") and hasattr(price, "run"):
        price.add_arguments(parser)
        parser.set_defaults(handler=price.run)
        return

    parser.add_argument("--run-dir", type=Path, required=True, help="price training run folder with price_model.joblib and schema.json")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT / "price_regressor", help="folder for model.onnx and manifest.json (default: %(default)s)")
    parser.set_defaults(handler=lambda args: _run_price(price, args))


def _run_price(price, args) -> int:
    print(price.export_price_model(args.run_dir, args.out))
    return 0


def _price_missing(args) -> int:
    print(f"The price command needs the module {PRICE_MODULE}, which is not in this checkout.", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m export", description="Export trained models to ONNX, each with a manifest.json.")
    parser.add_argument("--verbose", action="store_true", help="also log the ONNX exporter's optimisation passes")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_classifier_command(subparsers)
    add_int8_command(subparsers)
    add_price_command(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        for name in NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
