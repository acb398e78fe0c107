"""What the benchmarks share: a process's peak memory and the figures a measuring child prints."""

from __future__ import annotations

import json
from pathlib import Path


def peak_rss_mb(pid: int | str = "self") -> float:
    """Peak resident set size (VmHWM) of a live process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"VmHWM not found in /proc/{pid}/status")


def print_child_figures(seconds: float, baseline_mb: float) -> None:
    """One JSON line for the parent: the timed work, peak RSS, and RSS before the work."""
    print(
        json.dumps(
            {"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "baseline_rss_mb": baseline_mb}
        )
    )
