"""Helpers the Python benchmark drivers share (standard library only)."""

import random
import socket
import subprocess


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs, p):
    """The p-th percentile of xs, interpolated between the nearest ranks."""
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def generate_big(path, size, chunk=64 << 20):
    """`size` deterministic bytes at `path`, written `chunk` at a time (every chunk differs)."""
    block = bytearray(random.Random(19).randbytes(chunk))
    with open(path, "wb") as f:
        written, i = 0, 0
        while written < size:
            block[:8] = i.to_bytes(8, "little")
            n = min(chunk, size - written)
            f.write(block[:n])
            written, i = written + n, i + 1


def measured(args, cwd, shell=False, env=None):
    """(wall seconds, peak RSS in MiB, stdout) of one command under GNU time; `shell` runs a
    bash command line."""
    cmd = ["/usr/bin/time", "-f", "%e %M"] + (["bash", "-c", args] if shell else list(args))
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"{args} failed ({r.returncode}): {r.stderr.strip()[-800:]}")
    wall, rss_kib = r.stderr.strip().splitlines()[-1].split()
    return float(wall), int(rss_kib) / 1024, r.stdout
