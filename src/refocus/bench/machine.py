"""Where a report's numbers come from: the machine and the code (every bench report
records both, in the same words)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[3]


def machine_info() -> dict:
    """The machine: platform, CPU model (from /proc/cpuinfo where there is one) and
    cores, Python, torch and its threads, and the GPU torch sees, if any."""
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception:  # no torch, or a broken CUDA: the report still says the rest
        pass
    return info


def cpu_words(machine: dict) -> str:
    """The CPU as a report line names it: its model, else the architecture."""
    return machine.get("cpu") or machine.get("processor") or "?"


def git_state() -> str | None:
    """``git describe --always --dirty`` of the checkout the code runs from (results of
    a dirty tree cannot be tied to a commit, so the report says so)."""
    import subprocess

    try:
        res = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=_REPO_ROOT, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None
