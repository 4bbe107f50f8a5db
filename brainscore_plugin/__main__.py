"""``python -m brainscore_plugin export <model> <dir> [--weights PATH]``."""
from __future__ import annotations

import argparse
import sys

from tdsnn.checkpoint import CheckpointError
from tdsnn.registry import UnknownModelError

from .export import export_plugin


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m brainscore_plugin")
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write an upstream brain-score/vision plugin folder")
    export.add_argument("model", help="registered model name, e.g. tsresnet18.fmnist")
    export.add_argument("directory", help="where to write the plugin folder")
    export.add_argument("--weights", help="checkpoint to export instead of the registered weights")
    args = parser.parse_args(argv)
    try:
        folder = export_plugin(args.model, args.directory, weights=args.weights)
    except (UnknownModelError, CheckpointError, ValueError) as err:
        print(f"brainscore_plugin: {err}", file=sys.stderr)
        return 2
    print(f"plugin written to {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
