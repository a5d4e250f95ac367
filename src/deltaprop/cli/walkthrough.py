"""``deltaprop walkthrough``: one step of backpropagation on a tiny network, every number labelled by its equation."""

import json

from .. import activations, losses
from ..errors import DeltapropError
from ..walkthrough import MAX_LAYERS, MAX_WIDTH, walkthrough
from . import config as C
from .common import UsageError, parse_arg

__all__ = ["add_walkthrough", "cmd_walkthrough"]


def cmd_walkthrough(args):
    """``deltaprop walkthrough``: :func:`deltaprop.walkthrough.walkthrough` as text, or its numbers as JSON."""
    sizes = parse_arg(args.sizes, "--sizes", C.list_of(C.integer(1), "layer sizes such as 2,3,2"))
    acts = parse_arg(args.activation, "--activation", C.name_list)
    learning_rate = parse_arg(args.learning_rate, "--learning-rate", C.number(0.0, low_open=True))
    seed = parse_arg(args.seed, "--seed", C.integer(0))
    digits = parse_arg(args.digits, "--digits", C.integer(1))
    numbers = C.list_of(C.number(), "a number or comma-separated numbers such as 0.5,-0.2")
    x = None if args.x is None else parse_arg(args.x, "--x", numbers)
    y = None if args.y is None else parse_arg(args.y, "--y", numbers)
    if digits > 17:
        raise UsageError(f"--digits must be at most 17 (what float64 holds), got {args.digits!r}")
    if len(sizes) < 2:
        raise UsageError(f"--sizes must list the input, any hidden and the output sizes, such as 2,3,2; "
                         f"got {args.sizes!r}")
    if len(acts) != 1 and len(acts) != len(sizes) - 2:
        raise UsageError(f"--activation has {len(acts)} names for {len(sizes) - 2} hidden layers; give one or one "
                         f"per layer")
    try:
        loss = losses.canonical_name(args.loss)
        # As gradcheck: a loss named alone brings its matching output activation; neither, the defaults.
        output = args.output_activation or ("sigmoid" if args.loss == _DEFAULT_LOSS
                                            else losses.default_activation_for(loss))
        for name in acts + [output]:
            activations.get(name)
        step = walkthrough(sizes, activation=acts[0] if len(acts) == 1 else acts, output_activation=output,
                           loss=loss, learning_rate=learning_rate, x=x, y=y, seed=seed, digits=digits)
    except DeltapropError as exc:  # every failure here comes from an option's value
        raise UsageError(str(exc)) from None
    print(json.dumps(step.to_dict(), indent=2) if args.json else step.text())
    return 0


_DEFAULT_LOSS = "mean_squared_error"


def add_walkthrough(sub, formatter):
    """The ``walkthrough`` sub-command's parser (its one-line help is in :mod:`deltaprop.cli.parser`)."""
    parser = sub.add_parser(
        "walkthrough", formatter_class=formatter,
        epilog=WALKTHROUGH_EXAMPLES,
        description="Take one step of backpropagation on one sample through a tiny float64 network and print "
                    "each z, a, δ, ∂L/∂W, ∂L/∂b and update under the equation it instantiates, so that the "
                    "equations can be checked by hand; the same step taken by deltaprop.Network is compared "
                    f"at the end. At most {MAX_LAYERS} layers of at most {MAX_WIDTH} units.")
    parser.add_argument("--sizes", default="2,3,2", metavar="N,N,...",
                        help="input, hidden and output sizes (default: 2,3,2)")
    parser.add_argument("--activation", default="sigmoid", metavar="NAME",
                        help="hidden activation: one for all hidden layers or one per layer (default: sigmoid)")
    parser.add_argument("--output-activation", default=None, metavar="NAME",
                        help="output activation (default: sigmoid; with --loss alone, the loss's matching "
                             "activation, e.g. softmax for categorical_crossentropy)")
    parser.add_argument("--loss", default=_DEFAULT_LOSS, metavar="NAME",
                        help="the loss, a name or an alias such as mse, bce, cce (default: mean_squared_error)")
    parser.add_argument("--learning-rate", default="0.5", metavar="ETA", help="η (default: 0.5)")
    parser.add_argument("--x", default=None, metavar="X,X,...",
                        help="the sample (default: drawn with --seed, rounded to one decimal)")
    parser.add_argument("--y", default=None, metavar="Y,...",
                        help="its target: a class index for categorical_crossentropy, 0/1 labels for "
                             "binary_crossentropy, values otherwise (default: drawn with --seed)")
    parser.add_argument("--seed", default="0", metavar="N",
                        help="draws the weights and biases (and x, y unless given) (default: 0)")
    parser.add_argument("--digits", default="4", metavar="N", help="significant digits shown (default: 4)")
    parser.add_argument("--json", action="store_true", help="print every number, in full, as JSON")
    parser.set_defaults(func=cmd_walkthrough)


WALKTHROUGH_EXAMPLES = """\
examples:
  deltaprop walkthrough
      2-3-2 sigmoid network, mean squared error: the seed's δ^(L) = ∂L/∂a^(L) ⊙ σ'(z^(L))
  deltaprop walkthrough --loss categorical_crossentropy
      softmax output: the seed's rule through softmax's Jacobian, and the fused δ^(L) = a^(L) − y
  deltaprop walkthrough --sizes 1,1,1 --x 1 --y 0 --digits 6
  deltaprop walkthrough --sizes 3,4,2 --activation tanh --learning-rate 0.1 --json
"""
