"""Import-time cost of the extension: what `callbacks: ["proxy_ext.extension"]` adds to proxy start-up.

Measured in fresh interpreters, side by side: importing LiteLLM's proxy server alone vs the same
plus loading the extension (settings, routes, metrics). Target: well under 200 ms.
"""

from __future__ import annotations

import statistics
import subprocess
import sys

RUNS = 5
CODE = """
import time
from litellm.proxy import proxy_server
t = time.perf_counter()
import proxy_ext
proxy_ext.extension
print((time.perf_counter() - t) * 1000)
"""


def main() -> None:
    samples = []
    for _ in range(RUNS):
        out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    base = subprocess.run([sys.executable, "-c", "import time; t=time.perf_counter(); from litellm.proxy import proxy_server; print((time.perf_counter()-t)*1000)"],
                          capture_output=True, text=True, check=True)
    base_ms = float(base.stdout.strip().splitlines()[-1])
    p50 = statistics.median(samples)
    print(f"litellm.proxy.proxy_server import: {base_ms:.0f} ms")
    print(f"proxy_ext.extension load (p50 of {RUNS}): {p50:.1f} ms  (max {max(samples):.1f} ms)  target < 200 ms")
    print(f"ratio (proxy import + extension) / proxy import: {(base_ms + p50) / base_ms:.3f}")
