#!/usr/bin/env bash
# Installs what cvd-sim needs: Debian packages, a .venv with the local CPU torch, the package (editable) + dev extras.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
dpkg -s libusb-1.0-0 >/dev/null 2>&1 || need_apt+=(libusb-1.0-0)   # open3d imports fail without it
dpkg -s libgomp1 >/dev/null 2>&1 || need_apt+=(libgomp1)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

PY=${PY:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip setuptools wheel
# The CPU build of torch first, so that nothing later pulls a multi-GB CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/python -m pip check
.venv/bin/python -c "import torch, open3d, nuscenes, diffusers, gymnasium; print('cvd-sim environment ready: torch', torch.__version__)"
