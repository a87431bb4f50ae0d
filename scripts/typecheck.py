"""Type-check p2r_eval, training and the perf/ scripts with mypy (settings: [tool.mypy] in
pyproject.toml).

The repository installs some folders under other import names (`training` is imported as
`p2r_train`, see [tool.setuptools.package-dir]); the editable install finds them through an
import hook that mypy cannot follow. So this script links each such folder under its import
name in build/typecheck (the `mypy_path`), runs mypy, and prints the findings with the
repository's own paths. Exit status: mypy's (0 when clean).

    .venv/bin/python scripts/typecheck.py        # or: make typecheck
"""

from __future__ import annotations

import sys
from pathlib import Path

from mypy import api

if sys.version_info >= (3, 11):
    import tomllib
else:  # mypy depends on tomli where the standard library has no tomllib
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
LINK_TREE = REPO / "build" / "typecheck"


def renamed_packages(pyproject: Path) -> dict[str, str]:
    """Import name -> repository folder, for the folders installed under another name."""
    settings = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    package_dir: dict[str, str] = settings["tool"]["setuptools"]["package-dir"]
    return {name: folder for name, folder in package_dir.items() if name != folder}


def link_packages(packages: dict[str, str], link_tree: Path) -> None:
    """One symlink per import name, pointing at its folder (replaced if it points elsewhere)."""
    link_tree.mkdir(parents=True, exist_ok=True)
    for name, folder in packages.items():
        link = link_tree / name
        target = REPO / folder
        if link.is_symlink() and link.resolve() == target:
            continue
        if link.is_symlink():
            link.unlink()
        link.symlink_to(target, target_is_directory=True)


def repository_paths(report: str, packages: dict[str, str]) -> str:
    """mypy's report with link-tree paths (build/typecheck/p2r_train/...) as repository paths."""
    prefix = LINK_TREE.relative_to(REPO).as_posix()
    for name, folder in packages.items():
        report = report.replace(f"{prefix}/{name}/", f"{folder}/")
    return report


def main() -> int:
    packages = renamed_packages(REPO / "pyproject.toml")
    link_packages(packages, LINK_TREE)
    config = ["--config-file", str(REPO / "pyproject.toml")]
    # The perf/ scripts are files, not a package (they import each other as top-level
    # modules), and mypy takes either packages or files in one run.
    perf_scripts = [str(path) for path in sorted((REPO / "perf").glob("*.py"))]
    worst = 0
    for targets in ([], perf_scripts):
        stdout, stderr, status = api.run([*config, *targets])
        sys.stdout.write(repository_paths(stdout, packages))
        sys.stderr.write(stderr)
        worst = max(worst, status)
    return worst


if __name__ == "__main__":
    sys.exit(main())
