#!/usr/bin/env python3
"""Our fused soft-argmax against kornia's `spatial_soft_argmax2d`, in alternating rounds.

Each round runs, per shape, our criterion bench filtered to that shape (the plain sum, the
forward, forward + backward) and then `../shared/reference/torch_reference.py softargmax`
(kornia, the mean of 20 repetitions), back to back, so that both see the same state of a
shared machine. It prints every round and, per shape, the medians: the forward as a share
of the plain sum's speed and forward + backward against kornia (the ops issue's targets).

kornia runs on the allocator given by --kornia-allocator: `jemalloc` preloads the system's
libjemalloc with the settings of our examples' jemalloc (`examples/support/jemalloc.rs`),
so that both sides allocate alike; `system` is PyTorch's default (glibc), as the reference
script runs when called by hand. Our bench always runs on jemalloc.

Usage (from the repository root, after ../shared/reference/setup.sh and, for jemalloc,
`apt-get install libjemalloc2`):
  python3 benches/reference/kornia_rounds.py [--rounds 4] [--shapes 32x5x60x60,...]
      [--kornia-allocator jemalloc|system] [--python ~/.cache/landmark-ssl-reference/bin/python]
"""
import argparse
import glob
import os
import re
import statistics
import subprocess
import sys

SHAPES = "32x68x64x64,32x5x60x60,64x19x80x80"
JEMALLOC_CONF = "oversize_threshold:0,dirty_decay_ms:-1,muzzy_decay_ms:-1,thp:always"
UNITS = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}


def ours(shape):
    """Medians (ms) of criterion's read_bandwidth, fused_fwd and fused_fwd_bwd on `shape`."""
    out = subprocess.run(
        ["cargo", "bench", "--quiet", "--bench", "soft_argmax", "--",
         f"(read_bandwidth|fused_fwd|fused_fwd_bwd)/{shape}$",
         "--warm-up-time", "1", "--measurement-time", "2"],
        check=True, capture_output=True, text=True).stdout
    found = {}
    for name, mid, unit in re.findall(
            r"soft_argmax/(\w+)/\S+\s+time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", out):
        found[name] = float(mid) * UNITS[unit]
    missing = {"read_bandwidth", "fused_fwd", "fused_fwd_bwd"} - found.keys()
    if missing:
        sys.exit(f"bench output for {shape} lacks {sorted(missing)}:\n{out}")
    return found


def kornia(shape, python, allocator):
    """kornia's forward and forward + backward times (ms) on `shape`."""
    env = dict(os.environ)
    if allocator == "jemalloc":
        libs = glob.glob("/usr/lib/*/libjemalloc.so.2") + glob.glob("/usr/lib/libjemalloc.so.2")
        if not libs:
            sys.exit("no libjemalloc.so.2 (apt-get install libjemalloc2), or use --kornia-allocator system")
        env.update(LD_PRELOAD=libs[0], MALLOC_CONF=JEMALLOC_CONF)
    script = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "reference",
                          "torch_reference.py")
    out = subprocess.run(
        [python, script, "softargmax", "--steps", "20", "--shape", shape.replace("x", ",")],
        check=True, capture_output=True, text=True, env=env).stdout
    fwd = float(re.search(r"kornia_softargmax_fwd_ms=(\S+)", out).group(1))
    fwd_bwd = float(re.search(r"kornia_softargmax_fwd_bwd_ms=(\S+)", out).group(1))
    return fwd, fwd_bwd


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--shapes", default=SHAPES)
    ap.add_argument("--kornia-allocator", choices=["jemalloc", "system"], default="jemalloc")
    ap.add_argument("--python",
                    default=os.path.expanduser("~/.cache/landmark-ssl-reference/bin/python"))
    args = ap.parse_args()
    for shape in args.shapes.split(","):
        rows = []
        for r in range(1, args.rounds + 1):
            o = ours(shape)
            kf, kfb = kornia(shape, args.python, args.kornia_allocator)
            row = (o["read_bandwidth"] / o["fused_fwd"], kfb / o["fused_fwd_bwd"])
            rows.append(row)
            print(f"{shape} round {r}: sum {o['read_bandwidth']:.4f} ms, forward "
                  f"{o['fused_fwd']:.4f} ms ({100 * row[0]:.0f}% of the sum's speed), "
                  f"fwd + bwd {o['fused_fwd_bwd']:.4f} ms; kornia ({args.kornia_allocator}) "
                  f"forward {kf:.3f} ms, fwd + bwd {kfb:.3f} ms: {row[1]:.1f}x", flush=True)
        share = statistics.median(r[0] for r in rows)
        ratio = statistics.median(r[1] for r in rows)
        print(f"{shape}: median forward {100 * share:.0f}% of the plain sum's speed "
              f"(target 50%), median fwd + bwd {ratio:.1f}x kornia (target 10x)", flush=True)


if __name__ == "__main__":
    main()
