#!/usr/bin/env bash
# Prepares CUDA's compiler from PyPI wheels so that `cargo check --features cuda` runs on a machine without a GPU
# or a system CUDA toolkit. Prints the environment to source:
#   eval "$(.ci/cuda-env.sh)" && cargo check -p landmark-ssl-ops --features cuda
# Measured here on 2 cores: about 4 minutes from scratch (almost all of it candle-kernels' nvcc steps), a ~500 MB venv (nvcc, ptxas, NVRTC).
# It compiles; it cannot run: tests need a GPU and its driver (use `cargo test --features cuda --no-run` here).
# Versions are pinned together: cudarc 0.19 accepts CUDA up to 13.4, and mixing wheel versions breaks nvcc.
set -euo pipefail
venv=${1:-$HOME/.cache/landmark-ssl-cuda}
# NVRTC (a 53 MB wheel) compiles the library's own kernel source (.ci/nvrtc-check.py); a venv
# made before it was added gets it on the next run.
[ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2
if ! compgen -G "$venv/lib/python3*/site-packages/nvidia/cu13/lib/libnvrtc.so.13" >/dev/null; then
  "$venv/bin/pip" install -q nvidia-cuda-nvcc==13.4.92 nvidia-cuda-crt==13.4.92 nvidia-nvvm==13.4.92 \
    nvidia-cuda-runtime==13.4.92 nvidia-cuda-nvrtc==13.4.92 nvidia-cuda-cccl==13.3.5.0.6 >&2
fi
root=$("$venv/bin/python" -c 'import os, nvidia; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')
[ -e "$root/lib/libcudart.so" ] || ln -sf libcudart.so.13 "$root/lib/libcudart.so"
cat <<ENV
export CUDA_HOME=$root CUDA_PATH=$root CUDA_ROOT=$root CUDA_TOOLKIT_ROOT_DIR=$root
export PATH=$root/bin:\$PATH
export LANDMARK_SSL_NVRTC=$root/lib/libnvrtc.so.13
export CUDA_COMPUTE_CAP=\${CUDA_COMPUTE_CAP:-90}
export CUDAFORGE_THREADS=\${CUDAFORGE_THREADS:-2}
ENV
