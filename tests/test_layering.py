"""Imports run downward (docs/architecture.md): io -> aperture, camera -> depth ->
render, deblur -> pipeline -> bench -> cli, ui.

Every module under ``src/refocus`` is parsed (not imported) and each of its imports,
at module level or inside a function, is checked against the stages: a module may
import its own stage, one beside it, or one below. An upward import that remains is
listed in ``ALLOWED`` with the reason, so this file is also the record of them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import refocus

PKG = Path(refocus.__file__).parent

#: Rank of each top-level part of the package; equal ranks may import each other.
STAGES = {
    "errors": 0,  # the one error type, raised by every stage
    "notes": 0,  # warnings collected as notes per thread, by every stage
    "io": 1,
    "aperture": 2,
    "camera": 2,
    "depth": 3,
    "render": 4,
    "deblur": 4,
    "pipeline": 5,
    "bench": 6,
    "cli": 7,
    "ui": 7,
}

#: (importing module, imported module) pairs that go upward on purpose.
ALLOWED = {
    # The last depth source (no stored depth, no network) is the photo's own blur, which
    # is DeblurNet's defocus map. Passing a defocus estimator into get_depth instead
    # would change the one depth rule's signature for all its callers (CLI, UI,
    # pipeline); the import is lazy, inside the function that needs it.
    ("refocus.depth.estimate", "refocus.deblur"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str):
    """(line, imported module) for every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "refocus":  # `from refocus import aperture` imports the stage itself
                for alias in node.names:
                    yield node.lineno, f"refocus.{alias.name}"
            else:
                yield node.lineno, target


def _stage(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "refocus" or len(parts) < 2 or parts[1] not in STAGES:
        return None
    return parts[1]


def _upward_imports():
    found = []
    for path in sorted(PKG.rglob("*.py")):
        module = _module_name(path)
        own = _stage(module)
        if own is None:  # the package root: the public facade, importing stages lazily
            continue
        for line, target in _imports(path, module):
            other = _stage(target)
            if other is not None and STAGES[other] > STAGES[own]:
                found.append((module, ".".join(target.split(".")[:2]), line))
    return found


def test_every_top_level_part_has_a_stage():
    parts = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    parts |= {p.stem for p in PKG.glob("*.py") if p.stem != "__init__"}
    assert parts <= set(STAGES), f"no stage for {sorted(parts - set(STAGES))}: add it to STAGES and the docs"


def test_imports_run_downward():
    upward = [(m, t, line) for m, t, line in _upward_imports() if (m, t) not in ALLOWED]
    assert not upward, "upward imports:\n" + "\n".join(f"  {m}:{line} imports {t}" for m, t, line in upward)


def test_allow_list_is_current():
    """An allowed import that is gone must leave the list, so that it stays the record."""
    present = {(m, t) for m, t, _ in _upward_imports()}
    assert ALLOWED <= present, f"no longer imported, remove from ALLOWED: {sorted(ALLOWED - present)}"


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    src = "def f():\n    from refocus.ui import app\n\nfrom ..pipeline import core\n"
    path = tmp_path / "x.py"
    path.write_text(src)
    assert {t for _, t in _imports(path, "refocus.render.x")} == {"refocus.ui", "refocus.pipeline"}


def test_bench_registers_the_stages_methods_explicitly():
    """The lower stages' benchmark methods are found without loading modules by string,
    genfocus opt-in as before."""
    from refocus.bench import methods

    assert not hasattr(methods, "PLUGIN_MODULES")
    assert methods.load_plugins() == []  # no stage failed to import (or loaded already)
    names = {t: [m.name for m in methods.methods_for(t)] for t in methods.TASKS}
    assert {"deblurnet", "deblurnet-raw", "wiener", "unsharp"} <= set(names["deblur"])
    assert "pipeline" in names["refocus"]
    assert all("genfocus" not in n for n in names.values())
    assert all([m.name for m in methods.methods_for(t, ["genfocus"])] == ["genfocus"] for t in methods.TASKS)
