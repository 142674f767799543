#!/usr/bin/env bash
# The checks that need an NVIDIA GPU: run from the repository root, as is, on a machine with
# a GPU, its driver, the CUDA toolkit (nvcc, for candle's kernels) and a Rust toolchain.
#
#   scripts/gpu-check.sh
#
# Steps (each prints a heading; the first one that fails stops the script with a non-zero
# exit status):
#   1. the GPU (nvidia-smi -L) and the toolkit (nvcc --version);
#   2. the tests built with the `cuda` feature: the ops crate (its `cuda_matches_composite`
#      compares the CUDA soft-argmax kernels with an f64 reference and the CPU kernel), then
#      every other workspace crate whose sources or tests name the `cuda` feature;
#   3. the throughput example for seqmt-blocks, seqmt-multipie and rcnplus-300w, on
#      `cuda:0` and on `cpu`, every figure printed, then side by side;
#   4. two epochs of the Blocks example on `cuda:0`.
#
# Comparing devices: the throughput example trains on random data and weights from a fixed
# seed, so both devices run the same model on the same batch. The script checks that both
# runs build a model of the same size (`params=`) and that the objective of their first step
# (`first_loss=`) agrees to a relative 1e-3 (float rounding differs between the kernels;
# a wrong kernel is off by far more), and prints every figure side by side.
#
# Environment: CUDA_COMPUTE_CAP (e.g. 90) overrides the compute capability candle's kernels
# are built for (by default read from nvidia-smi); GPU_CHECK_OUT (default
# target/gpu-check) holds the logs and the Blocks runs.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${GPU_CHECK_OUT:-target/gpu-check}
mkdir -p "$out"
start=$(date +%s)
step() { printf '\n== %s   (%d s)\n' "$1" "$(($(date +%s) - start))"; }

step "GPU"
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "no NVIDIA GPU: nvidia-smi is not installed (this script needs a GPU and its driver)" >&2
  exit 2
fi
if ! gpus=$(nvidia-smi -L 2>&1) || ! grep -q '^GPU ' <<<"$gpus"; then
  echo "no NVIDIA GPU found by nvidia-smi -L:" >&2
  echo "$gpus" >&2
  exit 2
fi
echo "$gpus"
if ! command -v nvcc >/dev/null 2>&1; then
  echo "nvcc not found: install the CUDA toolkit and put its bin/ on PATH (candle's kernels need it)" >&2
  exit 2
fi
nvcc --version | tail -n 2
cargo --version

step "tests with the cuda feature: landmark-ssl-ops"
cargo test --release --features cuda -p landmark-ssl-ops
# The CUDA test must have run, not skipped itself (it skips when no device opens).
cargo test --release --features cuda -p landmark-ssl-ops --test soft_argmax \
  cuda_matches_composite -- --nocapture 2>&1 | tee "$out/cuda-test.log"
if grep -q 'no CUDA device' "$out/cuda-test.log"; then
  echo "cuda_matches_composite skipped itself: candle could not open cuda:0" >&2
  exit 1
fi

# Other crates whose code or tests depend on the feature (e.g. device selection in the
# trainer); found by name so that tests added later run too.
for dir in crates/*/; do
  name=$(basename "$dir")
  [ "$name" = ops ] && continue
  if grep -rqs 'feature = "cuda"' "$dir/src" "$dir/tests"; then
    step "tests with the cuda feature: landmark-ssl-$name"
    cargo test --release --features cuda -p "landmark-ssl-$name"
  fi
done
if grep -rqs 'feature = "cuda"' tests; then
  step "tests with the cuda feature: landmark-ssl (the facade's tests/)"
  cargo test --release --features cuda -p landmark-ssl --tests
fi

step "build the examples with the cuda feature"
cargo build --release --features cuda --example throughput --example blocks

# Every `key=value` figure of two throughput runs (params=, train_images_per_sec=, ...), one
# line per key: the key, its value in the first log, its value in the second.
side_by_side() {
  awk '
    FNR == 1 { file++ }
    { for (i = 1; i <= NF; i++) if ($i ~ /^[A-Za-z_]+=/) {
        key = substr($i, 1, index($i, "=") - 1); value = substr($i, index($i, "=") + 1)
        if (!(key in seen)) { seen[key] = 1; keys[++n] = key }
        v[file, key] = value } }
    END { printf "%-24s %-20s %s\n", "", "cuda:0", "cpu"
          for (i = 1; i <= n; i++) printf "%-24s %-20s %s\n", keys[i], v[1, keys[i]], v[2, keys[i]] }
  ' "$1" "$2"
}

for model in seqmt-blocks seqmt-multipie rcnplus-300w; do
  for device in cuda:0 cpu; do
    step "throughput: $model on $device"
    log="$out/throughput-$model-${device/:/}.log"
    cargo run --release --features cuda --example throughput -- \
      --preset "$model" --device "$device" 2>&1 | tee "$log"
  done
  gpu_log="$out/throughput-$model-cuda0.log"
  cpu_log="$out/throughput-$model-cpu.log"
  step "throughput: $model, cuda:0 | cpu"
  side_by_side "$gpu_log" "$cpu_log"
  gpu_params=$(grep -E '^params=' "$gpu_log" || true)
  cpu_params=$(grep -E '^params=' "$cpu_log" || true)
  if [ -z "$gpu_params" ] || [ "$gpu_params" != "$cpu_params" ]; then
    echo "$model: the devices' models differ in size: cuda:0 '$gpu_params', cpu '$cpu_params'" >&2
    exit 1
  fi
  gpu_loss=$(grep -E '^first_loss=' "$gpu_log" | cut -d= -f2 || true)
  cpu_loss=$(grep -E '^first_loss=' "$cpu_log" | cut -d= -f2 || true)
  if ! python3 -c 'import sys; a, b = map(float, sys.argv[1:]); sys.exit(not abs(a - b) <= 1e-3 * max(abs(a), abs(b)))' \
      "${gpu_loss:-nan}" "${cpu_loss:-nan}"; then
    echo "$model: the first step's objective differs: cuda:0 '$gpu_loss', cpu '$cpu_loss'" >&2
    exit 1
  fi
  echo "$model: first_loss agrees (cuda:0 $gpu_loss, cpu $cpu_loss)"
done

step "Blocks, 2 epochs on cuda:0"
cargo run --release --features cuda --example blocks -- \
  --epochs 2 --device cuda:0 --quiet --out "$out/blocks" --json "$out/blocks.json"

step "all GPU checks passed"
