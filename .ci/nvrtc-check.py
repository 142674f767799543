#!/usr/bin/env python3
"""Compiles the CUDA C source that a Rust file embeds (the raw string `const SRC: &str =
r#"..."#;`) with NVRTC, as the library does at run time, and writes the PTX.

No GPU is needed: NVRTC only compiles. `cargo check --features cuda` checks the Rust side;
this checks the kernels' own source, which otherwise meets a compiler only on a GPU machine.

Usage: nvrtc-check.py LIBNVRTC RUST_FILE OUT.ptx [NVRTC OPTION ...]
"""
import ctypes
import re
import sys


def main():
    lib_path, rust_file, out_path, *options = sys.argv[1:]
    lib = ctypes.CDLL(lib_path)
    text = open(rust_file, encoding="utf-8").read()
    found = re.search(r'const SRC: &str = r#"(.*?)"#;', text, re.S)
    if not found:
        sys.exit(f"{rust_file}: no `const SRC: &str = r#\"...\"#;` found")
    prog = ctypes.c_void_p()
    rc = lib.nvrtcCreateProgram(ctypes.byref(prog), found.group(1).encode(), b"kernels.cu", 0, None, None)
    if rc != 0:
        sys.exit(f"nvrtcCreateProgram failed ({rc})")
    opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
    rc = lib.nvrtcCompileProgram(prog, len(options), opts)
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    if log.value.strip():
        print(log.value.decode(errors="replace"))
    if rc != 0:
        sys.exit(f"{rust_file}: NVRTC failed to compile its kernels (error {rc})")
    lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
    ptx = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetPTX(prog, ptx)
    with open(out_path, "wb") as f:
        f.write(ptx.value)
    entries = [e.decode() for e in re.findall(rb"\.entry (\w+)", ptx.value)]
    print(f"{rust_file}: NVRTC compiled {len(entries)} kernels: {', '.join(entries)}")


if __name__ == "__main__":
    main()
