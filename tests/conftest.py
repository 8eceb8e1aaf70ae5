import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("REFOCUS_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only shared data folder; tests that need it skip when it is absent."""
    p = SHARED / "data"
    if not p.exists():
        pytest.skip(f"shared data not found at {p} (set REFOCUS_SHARED)")
    return p


def _load_training_module(name: str):
    """``training/NAME.py`` as a module, with ``training/`` on ``sys.path`` for its own
    imports and the module registered under NAME (dataclasses and pickling look it up)."""
    import importlib.util
    import sys

    sys.path.insert(0, str(REPO / "training"))
    spec = importlib.util.spec_from_file_location(name, REPO / "training" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def training_module():
    """The loader of training scripts: ``training_module("photo_pairs")``."""
    return _load_training_module


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(1234)


# No test may wait on the Hugging Face hub (there is no network to it here, and a real
# download would make tests slow and flaky): the default depth network is taken to be
# unavailable unless a test says otherwise. Child processes (CLI tests) inherit this.
os.environ["HF_HUB_OFFLINE"] = "1"
