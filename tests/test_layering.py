"""Import layering, checked on the sources (the layers are in README's "Layout"):

- kernels (``ext/*.pyx``) import nothing of recsys but the private root helpers
  (``recsys._sparse`` and the like), never the data layer or the models;
- a model module (one that defines a registered model) imports no other model module: shared
  helpers live below the models (``recsys._similarity``, ``recsys._sparse``, ...);
- an underscore name (a private module or a private attribute) is imported only inside the
  package that owns it; outside the ``recsys`` package, the benchmarks may import the kernels
  (``recsys._ext``) and the thread and memory probes they measure (``recsys._threads``,
  ``recsys._validation``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from recsys.models.base import registered_models

ROOT = Path(__file__).parents[1]
BENCHMARK_ALLOWED = ("recsys._ext", "recsys._threads", "recsys._validation")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path):
    """(module, names) of every import in ``path``, relative imports resolved."""
    tree = ast.parse(path.read_text())
    package = _module_name(path) if path.name == "__init__.py" else \
        _module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([module] if module else []))
            yield module, [a.name for a in node.names]


def _sources(*folders: str):
    """The project's Python files under ``folders``; hidden folders (the peers' virtualenvs,
    benchmarks/.peers*, which `make bench-peers` creates) are not the project's."""
    for folder in folders:
        yield from sorted(path for path in (ROOT / folder).rglob("*.py")
                          if not any(part.startswith(".")
                                     for part in path.relative_to(ROOT).parts))


def test_kernels_import_only_the_private_root_helpers():
    offenders = []
    for pyx in sorted((ROOT / "ext").glob("*.pyx")):
        for line in pyx.read_text().splitlines():
            match = re.match(r"\s*(?:from|c?import)\s+(recsys[\w.]*)", line)
            if match and not re.fullmatch(r"recsys\._(?!ext\b)\w+", match.group(1)):
                offenders.append(f"{pyx.name}: {line.strip()}")
    assert not offenders, offenders


def test_no_model_module_imports_another():
    model_modules = {cls.__module__ for cls in registered_models().values()}
    assert len(model_modules) >= 8
    offenders = []
    for module in sorted(model_modules):
        path = ROOT / (module.replace(".", "/") + ".py")
        for imported, names in _imports(path):
            targets = {imported} | {f"{imported}.{n}" for n in names}
            for other in targets & (model_modules - {module}):
                offenders.append(f"{module} imports {other}")
    assert not offenders, offenders


def _owner(module: str, names: list[str]) -> list[tuple[str, str]]:
    """(private thing, package that owns it) of an import: its outermost underscore module
    (everything inside a private module is private to the same package), else each
    underscore name taken from a public module."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return [(".".join(parts[:i + 1]), ".".join(parts[:i]))]
    return [(f"{module}.{n}", module.rpartition(".")[0] if module.count(".") else module)
            for n in names if n.startswith("_") and not n.startswith("__")]


@pytest.mark.parametrize("folder", ["recsys", "benchmarks", "pipelines"])
def test_private_names_stay_inside_their_package(folder):
    offenders = []
    for path in _sources(folder):
        importer = _module_name(path)
        for module, names in _imports(path):
            if not module.startswith("recsys"):
                continue
            for private, package in _owner(module, names):
                inside = importer == package or importer.startswith(package + ".")
                allowed = folder == "benchmarks" and private.startswith(BENCHMARK_ALLOWED)
                if not (inside or allowed):
                    offenders.append(f"{importer} imports {private} (private to {package})")
    assert not offenders, offenders


def test_the_rules_catch_what_they_forbid(tmp_path):
    """The checks above on the patterns they exist for."""
    assert _owner("recsys.models.base", ["_REGISTRY"]) == [("recsys.models.base._REGISTRY",
                                                             "recsys.models")]
    assert _owner("recsys.tuning.sweep", ["_fit", "sweep"]) == [("recsys.tuning.sweep._fit",
                                                                  "recsys.tuning")]
    assert _owner("recsys._threads", ["resolve_num_threads"]) == [("recsys._threads", "recsys")]
    assert _owner("recsys._ext._nbmf", ["h_step"]) == [("recsys._ext", "recsys")]
    assert not re.fullmatch(r"recsys\._(?!ext\b)\w+", "recsys.data.interactions")
