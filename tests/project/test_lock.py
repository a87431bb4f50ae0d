"""The lock files agree with pyproject.toml and with the environment the tests run in.

`make lock` (scripts/lock.sh) regenerates them; these tests fail until it is run after a
dependency changes, so a fresh clone never installs something other than what was tested.
"""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib")

REPO = Path(__file__).resolve().parents[2]
LOCKS = {"main.lock": ("dev", "train", "deepspeed"), "lmms.lock": ("lmms",)}
LOCK_PLATFORM = {"sys_platform": "linux", "platform_machine": "x86_64",
                 "python_version": "3.11", "platform_system": "Linux"}
NOT_LOCKED = {"torch", "torchvision"}  # installed by scripts/setup_env.sh itself
OVERRIDDEN = {"lmms.lock": {"av"}}  # requirements/lmms-overrides.txt


def locked_versions(name: str) -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements" / name).read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if requirement:
            package, _, version = requirement.partition("==")
            pins[canonicalize_name(package)] = version.strip()
    return pins


def declared_requirements(extras: tuple[str, ...]) -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    texts = list(project["dependencies"])
    for extra in extras:
        texts += project["optional-dependencies"][extra]
    environment = {**default_environment(), **LOCK_PLATFORM}
    requirements = [Requirement(text) for text in texts]
    return [requirement for requirement in requirements
            if requirement.marker is None or requirement.marker.evaluate(environment)]


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_declared_dependency_is_locked_within_its_range(lock: str) -> None:
    pins = locked_versions(lock)
    problems = []
    for requirement in declared_requirements(LOCKS[lock]):
        name = canonicalize_name(requirement.name)
        if name in NOT_LOCKED | OVERRIDDEN.get(lock, set()):
            continue
        if name not in pins:
            problems.append(f"{name} is not in requirements/{lock}")
        elif not requirement.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{name}=={pins[name]} is outside {requirement}")
    assert not problems, "run `make lock`: " + "; ".join(problems)


@pytest.mark.skipif((sys.platform, platform.machine(), sys.version_info[:2])
                    != ("linux", "x86_64", (3, 11)), reason="the locks are for the CI platform")
def test_the_test_environment_has_the_locked_versions() -> None:
    differing = []
    for name, version in locked_versions("main.lock").items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            differing.append(f"{name} not installed")
            continue
        if canonicalize_name(installed) != canonicalize_name(version) and installed != version:
            differing.append(f"{name} {installed} (lock: {version})")
    assert not differing, ("this environment is not the locked one; run `make setup` (or "
                           "`make lock` if the change was meant): " + "; ".join(differing))
