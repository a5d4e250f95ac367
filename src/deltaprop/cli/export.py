"""``deltaprop export``: a model file as an ONNX file that predicts the same, its data contract included."""

import json
import os

from ..export import OPSET, export_onnx
from ..export.graph import MAX_OPSET, MIN_OPSET
from ..tabular.files import load_model
from . import config as C
from .common import UsageError, parse_arg
from .model import open_model
from .paths import check_outputs

__all__ = ["cmd_export", "add_export"]


def cmd_export(args):
    """``deltaprop export MODEL --onnx PATH``: write the ONNX file atomically and describe its inputs and outputs."""
    check_outputs({"MODEL": args.model}, {"--onnx": args.onnx})
    opset = parse_arg(args.opset, "--opset", C.integer(MIN_OPSET))
    if opset > MAX_OPSET:
        raise UsageError(f"--opset must be at most {MAX_OPSET} (the newest opset deltaprop writes), got {opset}")
    open_model(args.model)  # a missing or invalid file: the same message as every other command
    model = load_model(args.model)  # what was saved: a TabularModel, or a network alone
    proto = export_onnx(model, args.onnx, inputs=args.inputs, opset=opset)
    io = json.loads(next(p.value for p in proto.metadata_props if p.key == "deltaprop.io"))
    size = os.path.getsize(args.onnx)
    print(f"wrote {args.onnx} ({size / 1024:.1f} KiB, ONNX opset {opset}, IR version {proto.ir_version})")
    for title, values in (("inputs", io["inputs"]), ("outputs", io["outputs"])):
        shown = [f"{v['name']} {v['type']}" for v in values[:12]]
        more = f" ... and {len(values) - 12} more" if len(values) > 12 else ""
        print(f"{title}: {', '.join(shown)}{more}")
    return 0


def add_export(sub, formatter):
    """The ``export`` sub-command's parser (its one-line help is in :mod:`deltaprop.cli.parser`)."""
    export = sub.add_parser(
        "export", formatter_class=formatter, epilog=EXPORT_EXAMPLES,
        description="Write a model file as ONNX: its data contract (imputation, categories, scaling), its "
                    "network and its head (labels and probabilities, or values in the target's units), "
                    "checked by onnx.checker. Needs the onnx extra: pip install 'deltaprop[onnx]'.")
    export.add_argument("model", metavar="MODEL", help="a model file written by 'deltaprop train' or deltaprop.save")
    export.add_argument("--onnx", metavar="PATH", required=True, help="the ONNX file to write")
    export.add_argument("--inputs", choices=("columns", "matrix"),
                        help="one input per feature column, or one matrix X (default: one matrix when every "
                             "feature is a number, else one input per column)")
    export.add_argument("--opset", default=str(OPSET), metavar="N",
                        help=f"the ONNX opset, {MIN_OPSET} to {MAX_OPSET} (default: {OPSET})")
    export.set_defaults(func=cmd_export)


EXPORT_EXAMPLES = """\
examples:
  deltaprop export penguins.safetensors --onnx penguins.onnx
      one input per column (string or double, shape (N, 1)); outputs label and probabilities
  deltaprop export model.safetensors --onnx model.onnx --inputs matrix --opset 18

The file computes what 'deltaprop predict' computes; run it with onnxruntime:
  python -c "import onnxruntime as ort; print(ort.InferenceSession('penguins.onnx').get_inputs())"
"""
