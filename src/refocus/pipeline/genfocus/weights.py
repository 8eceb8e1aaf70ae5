"""Where the generative engine's weights come from, decided in seconds and before
anything large is loaded.

* The base model, FLUX.1-dev (``black-forest-labs/FLUX.1-dev``, about 34 GB in bf16),
  is **gated** on the Hugging Face hub: accept its licence on the model's page, then log
  in once (``hf auth login``, or ``HF_TOKEN``). ``--base-model PATH`` takes a local copy
  (a folder ``FluxPipeline.from_pretrained`` reads) or another hub id.
* The Genfocus LoRAs (``deblurNet.safetensors``, ``bokehNet.safetensors``,
  ``deblurNet_with_pre_deblur.safetensors``, ~0.3-1 GB each) come from
  ``nycu-cplab/Genfocus-Model``, or from a local folder (``--genfocus-weights DIR``).

Downloads happen on first use with huggingface_hub's progress bar and stay in its
cache. Offline (``HF_HUB_OFFLINE=1``) or with the hub unreachable, the same one-probe
check as the depth network (:func:`refocus.depth.estimate.hub_reachable`) raises one
line within seconds.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from refocus.errors import RefocusError

BASE_MODEL = "black-forest-labs/FLUX.1-dev"
LORA_REPO = "nycu-cplab/Genfocus-Model"
LORA_FILES = {
    "deblur": "deblurNet.safetensors",
    "bokeh": "bokehNet.safetensors",
    "deblur-pre": "deblurNet_with_pre_deblur.safetensors",
}
INSTALL_HINT = "pip install 'refocus[genfocus]'"


class WeightsUnavailable(RefocusError):
    """The engine's weights are neither local nor downloadable now."""


def packages_missing() -> list[str]:
    """The engine's packages that are not installed (empty: the engine can run)."""
    import importlib.util

    return [m for m in ("diffusers", "peft", "accelerate") if importlib.util.find_spec(m) is None]


def available() -> bool:
    """True when the engine's packages are installed (weights are checked when used)."""
    return not packages_missing()


def require_packages() -> None:
    missing = packages_missing()
    if missing:
        raise RefocusError(f"the genfocus engine needs {', '.join(missing)}: {INSTALL_HINT}")


def _unavailable(what: str, why: str, local_flag: str, offline_set: bool) -> WeightsUnavailable:
    net = "unset HF_HUB_OFFLINE and connect once to download them" if offline_set else "connect once to download them"
    return WeightsUnavailable(f"genfocus {what} not downloaded and cannot be fetched ({why}): {net}, or pass {local_flag}")


def _gated_hint(repo: str) -> str:
    return (f"{repo} is gated: accept its licence at https://huggingface.co/{repo}, then log in with "
            "`hf auth login` (or set HF_TOKEN), or pass --base-model PATH")


def _probe_file(repo: str, filename: str, timeout_s: float) -> tuple[bool, str]:
    """One short request for a file of ``repo`` (with the user's token): (reachable, HTTP status or why not)."""
    import urllib.error
    import urllib.request

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    req = urllib.request.Request(f"{endpoint}/{repo}/resolve/main/{filename}", method="HEAD")
    try:
        from huggingface_hub import get_token

        token = get_token()
    except Exception:
        token = None
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        urllib.request.urlopen(req, timeout=timeout_s).close()
        return True, ""
    except urllib.error.HTTPError as exc:
        return True, f"HTTP {exc.code}"
    except Exception as exc:
        reason = getattr(exc, "reason", exc)
        return False, (str(reason).splitlines()[0][:80] if str(reason) else exc.__class__.__name__)


def _check_hub(repo: str, filename: str, what: str, local_flag: str) -> None:
    """Raise one line now when ``repo`` cannot be downloaded (offline, unreachable, gated)."""
    from refocus.depth.estimate import HUB_PROBE_TIMEOUT_S, _hub_offline

    if _hub_offline():
        raise _unavailable(what, "HF_HUB_OFFLINE is set", local_flag, offline_set=True)
    ok, status = _probe_file(repo, filename, HUB_PROBE_TIMEOUT_S)
    if not ok:
        raise _unavailable(what, f"the Hugging Face hub is unreachable: {status}", local_flag, offline_set=False)
    if status in ("HTTP 401", "HTTP 403"):
        raise WeightsUnavailable(_gated_hint(repo) if repo == BASE_MODEL else f"cannot download {repo}/{filename} ({status})")
    if status:
        raise RefocusError(f"cannot download {repo}/{filename} (the hub answered {status}): check the id, or pass {local_flag}")


def _is_local(name: str) -> bool:
    return Path(name).exists() or name.startswith((".", "/", "~")) or name.count("/") != 1


def resolve_base(base: str | None) -> str:
    """A folder with the base pipeline (cached or downloaded), or the given local folder."""
    name = base or BASE_MODEL
    if _is_local(name):
        p = Path(name).expanduser()
        if not (p / "model_index.json").is_file():
            raise RefocusError(f"--base-model {name}: not a diffusers pipeline folder (no model_index.json)")
        return str(p)
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(name, local_files_only=True)
    except Exception:
        pass
    _check_hub(name, "model_index.json", f"base model {name} is", "--base-model PATH")
    print(f"downloading {name} (once, ~34 GB; cached by Hugging Face)", file=sys.stderr, flush=True)
    try:
        # The repository also holds single-file checkpoints of the same weights at its root.
        return snapshot_download(name, ignore_patterns=["flux1-dev.safetensors", "ae.safetensors", "*.png", "*.jpg"])
    except Exception as exc:
        msg = str(exc).splitlines()[0][:160] if str(exc) else exc.__class__.__name__
        if "gated" in msg.lower() or "401" in msg or "403" in msg:
            raise WeightsUnavailable(_gated_hint(name)) from None
        raise _unavailable(f"base model {name} is", f"download failed: {msg}", "--base-model PATH", False) from None


def resolve_lora(task: str, folder: str | os.PathLike | None) -> str:
    """The path of the LoRA file for ``task`` ("deblur", "bokeh", "deblur-pre")."""
    filename = LORA_FILES[task]
    if folder is not None:
        p = Path(folder).expanduser()
        if not p.is_dir():
            raise RefocusError(f"--genfocus-weights {folder}: no such folder (give the folder holding {filename})")
        if not (p / filename).is_file():
            raise RefocusError(f"--genfocus-weights {folder}: no {filename} in that folder")
        return str(p / filename)
    from huggingface_hub import hf_hub_download

    try:
        return hf_hub_download(LORA_REPO, filename, local_files_only=True)
    except Exception:
        pass
    _check_hub(LORA_REPO, filename, f"weights {filename} are", "--genfocus-weights DIR")
    print(f"downloading {LORA_REPO}/{filename} (once; cached by Hugging Face)", file=sys.stderr, flush=True)
    try:
        return hf_hub_download(LORA_REPO, filename)
    except Exception as exc:
        msg = str(exc).splitlines()[0][:160] if str(exc) else exc.__class__.__name__
        raise _unavailable(f"weights {filename} are", f"download failed: {msg}", "--genfocus-weights DIR", False) from None
