#!/usr/bin/env bash
# Set up tdsnn from nothing: Debian's Fashion-MNIST package, a virtual environment in
# .venv with the pinned dependencies, and tdsnn itself (editable). Safe to re-run: a
# finished setup is recorded in .venv and skipped while setup.py is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
FMNIST_DIR=/usr/share/datasets/fashion-mnist

die() { echo "setup: $*" >&2; exit 1; }

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "Python >= 3.11 is required (spikingjelly 2.0.0); found $("$PYTHON" --version 2>&1). Set PYTHON=/path/to/python3.11."

if [ ! -d "$FMNIST_DIR" ]; then
  if [ "${TDSNN_SKIP_APT:-0}" = 1 ]; then
    echo "setup: skipping Debian's dataset-fashion-mnist (TDSNN_SKIP_APT=1); Fashion-MNIST will be downloaded by torchvision when first used."
  elif command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
      command -v sudo >/dev/null 2>&1 || die "installing dataset-fashion-mnist needs root; run as root or install sudo, or set TDSNN_SKIP_APT=1."
      SUDO=sudo
    fi
    echo "setup: installing Debian package dataset-fashion-mnist"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
    [ -d "$FMNIST_DIR" ] || die "dataset-fashion-mnist installed but $FMNIST_DIR is missing."
  else
    die "Debian's apt-get is not available, so Fashion-MNIST cannot be installed into $FMNIST_DIR. Set TDSNN_SKIP_APT=1 to continue (torchvision then downloads it when first used)."
  fi
fi

STAMP=".venv/.tdsnn-setup-$(cat setup.py scripts/setup.sh | sha256sum | cut -c1-16)"
if [ -f "$STAMP" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first, pinned to the tested versions (inside setup.py's torch~=2.14.1 / torchvision~=0.29.1),
# so brainscore-vision's unpinned torch requirement is already met.
.venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/python -m pip install -q -e ".[test]"
rm -f .venv/.tdsnn-setup-*
touch "$STAMP"
echo "setup: done (.venv)"
