"""The allocator tuning the refocus command applies (refocus.render.memory)."""

from __future__ import annotations

import subprocess
import sys

import pytest

CODE = "from refocus.render.memory import keep_freed_memory as k; print(k(), k())"


def _run(env_extra: dict) -> str:
    import os

    env = dict(os.environ, **env_extra)
    return subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env, check=True).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_applies_once_on_glibc_and_can_be_turned_off():
    first, second = _run({"REFOCUS_NO_MALLOPT": "0"}).split()
    assert second == "False"  # a second call does nothing
    assert first in ("True", "False")  # False on a non-glibc libc, never an error
    assert _run({"REFOCUS_NO_MALLOPT": "1"}) == "False False"
