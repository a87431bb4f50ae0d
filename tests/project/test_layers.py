"""p2r_eval's subpackages depend on each other in one direction, the order of the flow
(docs/contributing.md, "Layout and conventions"): each module imports only from its own
subpackage and those below it. An import against the order is allowed only where
``UPWARD_IMPORTS`` names it with its reason; an allowance nothing needs any more fails too,
so the list shrinks as the code is fixed."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import p2r_eval

PACKAGE = Path(p2r_eval.__file__).resolve().parent

LAYERS = ("core", "media", "models", "judge", "benchmarks", "eval", "report", "cli", "interop",
          "api")
"""Bottom to top. ``api`` is ``p2r_eval/__init__.py`` and ``p2r_eval/api.py``; ``interop``
and ``api`` are the top (both may use anything)."""
TOP = {"interop", "api"}

UPWARD_IMPORTS: dict[tuple[str, str], str] = {
    # (importing subpackage or module, imported subpackage or module): why
    ("p2r_eval.models.openai_backend", "p2r_eval.judge.cache"):
        "the OpenAI-compatible model backend shares the judge's reply cache",
    ("p2r_eval.models.openai_backend", "p2r_eval.judge.usage"):
        "the OpenAI-compatible model backend counts tokens with the judge's usage counter",
    ("p2r_eval.judge.toy_backend", "p2r_eval.benchmarks.toy_suite.scenes"):
        "the toy judge grades observations in the toy suite's scene vocabulary",
    ("eval", "report"):
        "eval writes a run's leaderboards and analysis at its end",
}


def layer_of(module: str) -> str:
    """The layer of a ``p2r_eval`` module name (``p2r_eval.eval.loop`` -> ``eval``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "api"


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def imported_modules(path: Path) -> Iterator[str]:
    """Every absolute module an import statement of ``path`` names, at any depth (lazy imports
    inside functions included); ``from p2r_eval.x import y`` names ``p2r_eval.x.y`` when y is
    a submodule, else ``p2r_eval.x``."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                yield candidate if is_module(candidate) else node.module


def is_module(name: str) -> bool:
    if not name.startswith("p2r_eval."):
        return False
    base = PACKAGE.parent.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def allowance(importer: str, imported: str) -> tuple[str, str] | None:
    """The ``UPWARD_IMPORTS`` key that allows ``importer`` to import ``imported``, if any."""
    for key in UPWARD_IMPORTS:
        source, target = key
        if _covers(source, importer) and _covers(target, imported):
            return key
    return None


def _covers(entry: str, module: str) -> bool:
    if "." not in entry:
        return layer_of(module) == entry
    return module == entry or module.startswith(entry + ".")


def upward_imports() -> tuple[list[str], set[tuple[str, str]]]:
    """The imports against the order that no allowance covers, and the allowances used."""
    violations, used = [], set()
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = module_name(path)
        own = layer_of(importer)
        for imported in imported_modules(path):
            if not imported.startswith("p2r_eval.") or own in TOP:
                continue
            if LAYERS.index(layer_of(imported)) <= LAYERS.index(own):
                continue
            key = allowance(importer, imported)
            if key is None:
                violations.append(f"{importer} imports {imported} ({own} -> "
                                  f"{layer_of(imported)})")
            else:
                used.add(key)
    return violations, used


def test_subpackages_import_only_downward_or_with_a_stated_reason():
    violations, used = upward_imports()
    assert violations == []
    assert set(UPWARD_IMPORTS) - used == set(), "allowances nothing needs any more"


def test_the_evaluation_package_never_imports_training():
    imports = {(module_name(path), imported) for path in PACKAGE.rglob("*.py")
               for imported in imported_modules(path)}
    assert sorted(pair for pair in imports
                  if pair[1].split(".")[0] in {"p2r_train", "training"}) == []


def test_the_layers_are_the_subpackages():
    folders = {path.name for path in PACKAGE.iterdir()
               if path.is_dir() and (path / "__init__.py").is_file()}
    assert folders == set(LAYERS) - {"api"}
