"""A description of the machine a benchmark ran on, stored beside its numbers."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

# numpy's float32 matmul of the embedding model's largest shape, on one thread.
SGEMM = """
import time, numpy as np
a = np.ones((1024, 384), np.float32)
b = np.ones((384, 1536), np.float32)
a @ b
best = float("inf")
for _ in range(5):
    t = time.perf_counter()
    for _ in range(20):
        a @ b
    best = min(best, time.perf_counter() - t)
print(20 * 2 * 1024 * 384 * 1536 / best / 1e9)
"""


def describe() -> dict[str, object]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        mem_kib = int(meminfo.read_text().split()[1])
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "host_speed": host_speed(),
    }


def host_speed() -> dict[str, float]:
    """Two single-core speed figures. Hosts of the same machine kind differ (the same
    scoring job has measured 2x apart on two of them), so a result is read beside these."""
    return {"python_loop_ns": python_loop_ns(), "sgemm_gflops_1_thread": sgemm_gflops()}


def python_loop_ns() -> float:
    """CPython's time per iteration of a plain integer loop, best of five."""

    def loop(n: int) -> int:
        total = 0
        for i in range(n):
            total += i
        return total

    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        loop(1_000_000)
        best = min(best, time.perf_counter() - start)
    return round(best * 1e9 / 1_000_000, 2)


def sgemm_gflops() -> float:
    # Its own process: BLAS reads its thread count once, at import.
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", SGEMM], env=env, check=True, capture_output=True, text=True
    )
    return round(float(out.stdout), 1)
