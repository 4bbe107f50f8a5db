"""``python -m brainscore_plugin export|check``: write a Brain-Score plugin folder, check one.

    python -m brainscore_plugin export MODEL DIR (--weights-hub OWNER/REPO[@REV] | --weights-url URL
        | --bundle-weights) [--weights PATH] [--requirement SPEC ...] [--allow-dirty] [--force]
    python -m brainscore_plugin check DIR

Exit status: 0 done, 1 a check failed, 2 bad input (nothing written).
"""
from __future__ import annotations

import argparse
import sys

from tdsnn.checkpoint import CheckpointError
from tdsnn.registry import UnknownModelError

from .check import CheckInputError, check_plugin
from .export import export_plugin


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m brainscore_plugin", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write an upstream brain-score/vision plugin folder")
    export.add_argument("model", help="registered model name, e.g. tsresnet18.fmnist")
    export.add_argument("directory", help="where to write the plugin folder (DIR/<plugin>/)")
    source = export.add_mutually_exclusive_group(required=True)
    source.add_argument("--weights-hub", metavar="OWNER/REPO[@REV]",
                        help="the plugin downloads <model>.safetensors from this Hugging Face hub repository")
    source.add_argument("--weights-url", metavar="URL", help="the plugin downloads the weights from this HTTPS URL")
    source.add_argument("--bundle-weights", action="store_true",
                        help="copy the weights into the folder (local use only: upstream plugins carry no binaries)")
    export.add_argument("--weights", metavar="PATH", help="checkpoint to export instead of the registered weights")
    export.add_argument("--requirement", metavar="SPEC", action="append",
                        help="requirements.txt line (repeatable); default: tdsnn @ git+<setup.py url>@<HEAD commit>")
    export.add_argument("--allow-dirty", action="store_true",
                        help="pin HEAD although the checkout has uncommitted changes")
    export.add_argument("--force", action="store_true",
                        help="replace DIR/<plugin> even if it is not a previous export")
    check = commands.add_parser("check", help="check a plugin folder before opening the upstream pull request")
    check.add_argument("directory", help="the plugin folder")
    return parser


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.command == "check":
        try:
            return check_plugin(args.directory)
        except CheckInputError as err:
            print(f"brainscore_plugin: {err}", file=sys.stderr)
            return 2
    try:
        done = export_plugin(args.model, args.directory, weights=args.weights, hub=args.weights_hub,
                             url=args.weights_url, requirements=args.requirement, allow_dirty=args.allow_dirty,
                             force=args.force)
    except (UnknownModelError, CheckpointError, ValueError) as err:
        print(f"brainscore_plugin: {err}", file=sys.stderr)
        return 2
    print(done.instructions())
    return 0


if __name__ == "__main__":
    sys.exit(main())
