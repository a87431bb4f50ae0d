"""The benchmarks: discovered from their YAML files, and loaded into items.

A task YAML (``tasks/<name>.yaml``) holds the facts: where the data comes from in each format,
how a record maps to an item (:mod:`p2r_eval.benchmarks.formats.mapping`), the categories of
its breakdown, and ``paper_column`` for the paper's seven (their order in its tables, and what
``--tasks all`` means). Its ``module`` names the code the benchmark needs, if any: a module
name (``p2r_eval.benchmarks.vsibench``) or a ``.py`` file beside the YAML, defining
``BENCHMARK`` (:class:`~p2r_eval.benchmarks.benchmark.Benchmark`: scoring per protocol, record
transforms). Without one, Video-R1's rules and the plain mean score it under both protocols.

Tasks are every YAML with ``sources`` in ``tasks/`` and in the folders of ``P2R_TASK_PATH``
(separated by ``os.pathsep``; ``p2r-eval --task-dir DIR`` adds one), so a benchmark can be
added without editing p2r (docs/contributing.md). A name defined twice is an error.

:func:`load_task` looks under the data root, in order, for Video-R1's file
(``DIR/eval_<name>.json``), then for the authors' release (``DIR/<folder>/``, the patterns in
the YAML), then asks the hub for the authors' annotations (videos are never downloaded; set
``P2R_HUB=0`` to never ask); ``docs/benchmarks.md`` documents the layouts. With no data root
it loads the demo suite.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from types import ModuleType
from typing import Any

import p2r_tasks
import yaml

from p2r_eval.benchmarks.benchmark import VIDEO_R1_RULES, Benchmark
from p2r_eval.benchmarks.formats.errors import AnnotationError, DataNotFoundError
from p2r_eval.benchmarks.formats.mapping import MediaBase, build_items, check_mapping
from p2r_eval.benchmarks.formats.records import AnnotationSource, read_annotation_file, read_hub
from p2r_eval.benchmarks.formats.transforms import TRANSFORMS
from p2r_eval.core.hub import HubUnreachableError, check_hub_reachable
from p2r_eval.core.items import Item, item_sha256

__all__ = [
    "FORMATS",
    "TASK_PATH_VARIABLE",
    "AnnotationError",
    "DataNotFoundError",
    "LoadedTask",
    "SourceSpec",
    "TaskSpec",
    "add_task_folder",
    "demo_data_root",
    "known_task_names",
    "load_task",
    "own_leaderboards",
    "paper_task_names",
    "resolve_task_names",
    "task_spec",
]

FORMATS = ("video-r1", "official")
TASKS_DIR = Path(p2r_tasks.__file__).resolve().parent
TASK_PATH_VARIABLE = "P2R_TASK_PATH"
HUB_SWITCH = "P2R_HUB"


@dataclass(frozen=True)
class SourceSpec:
    """Where one format's annotations are and how a record maps to an item.

    Video-R1 format: ``file`` in the data root. Authors' format: ``annotations`` (glob
    patterns, first match wins) in ``DATA_ROOT/folder``, TempCompass-style ``nested_keys``,
    the ``split`` of a saved ``DatasetDict`` (default: the hub's), and ``hub`` for
    ``load_dataset``. ``frame_folder_fps``: the rate the frames of its frame-folder records
    were taken at (MVBench's episodic_reasoning folders: 3); a frame folder of a source
    without one fails its item with an error saying so.
    """

    format: str
    record: dict[str, Any]
    records: int | None = None
    file: str | None = None
    folder: str | None = None
    annotations: tuple[str, ...] = ()
    nested_keys: tuple[str, ...] = ()
    split: str | None = None
    hub: dict[str, Any] | None = None
    frame_folder_fps: float | None = None

    def hub_settings(self) -> dict[str, Any]:
        if self.hub is None:
            raise ValueError(f"the {self.format} source has no hub settings")
        return self.hub

    def annotation_file(self, root: Path) -> Path:
        if self.file is None:
            raise ValueError(f"the {self.format} source names no annotation file")
        return root / self.file

    def media_folder(self, root: Path) -> Path:
        if self.folder is None:
            raise ValueError(f"the {self.format} source names no folder")
        return root / self.folder


@dataclass(frozen=True)
class TaskSpec:
    """A benchmark: the facts of its YAML and the code of its module (``benchmark``);
    ``transforms``: every record transform its mapping may name."""

    name: str
    title: str
    sources: dict[str, SourceSpec]
    breakdown: tuple[str, ...]
    benchmark: Benchmark
    transforms: Mapping[str, Callable[..., Any]]
    paper_column: int | None = None
    description: str = ""
    prompt: str = ""
    yaml_path: Path | None = None


@dataclass(frozen=True)
class LoadedTask:
    """A benchmark's items read from one source.

    ``data_files`` maps each annotation file (relative to the data root, or ``hub:...``) to
    its sha256 (a fingerprint for the hub); ``media_root`` is the folder media paths are
    relative to.
    """

    name: str
    items: list[Item]
    source_format: str
    data_files: dict[str, str]
    media_root: Path

    @cached_property
    def item_hashes(self) -> dict[str, str]:
        """Content hash of every item, by id (:func:`p2r_eval.core.items.item_sha256`),
        computed once per loaded task: the run's identity, its resume check and every sample
        line use them."""
        return {item.id: item_sha256(item, self.media_root) for item in self.items}


def task_folders() -> tuple[Path, ...]:
    """``tasks/``, then the folders of ``P2R_TASK_PATH`` in order, each once."""
    extra = os.environ.get(TASK_PATH_VARIABLE, "")
    return tuple(dict.fromkeys((TASKS_DIR, *(Path(part).expanduser().resolve()
                                             for part in extra.split(os.pathsep)
                                             if part.strip()))))


def add_task_folder(folder: Path) -> None:
    """Look for tasks in ``folder`` too, in this process and the processes it starts."""
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise ValueError(f"task folder {folder} is not a folder")
    current = os.environ.get(TASK_PATH_VARIABLE)
    os.environ[TASK_PATH_VARIABLE] = os.pathsep.join(filter(None, (current, str(folder))))


@cache
def _discovered(folders: tuple[Path, ...]) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Every task YAML (one with ``sources``) in ``folders``: name -> (path, parsed YAML)."""
    found: dict[str, tuple[Path, dict[str, Any]]] = {}
    for folder in folders:
        if not folder.is_dir():
            raise ValueError(f"{TASK_PATH_VARIABLE}: {folder} is not a folder")
        for path in sorted(folder.glob("*.yaml")):
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or "sources" not in data:
                continue
            if data.get("name") != path.stem:
                raise ValueError(f"{path}: name is {data.get('name')!r}, expected {path.stem!r}")
            if path.stem in found:
                raise ValueError(f"task {path.stem!r} is defined twice: {found[path.stem][0]} "
                                 f"and {path}")
            found[path.stem] = (path, data)
    return found


def paper_task_names() -> tuple[str, ...]:
    """The paper's benchmarks (the YAMLs with a ``paper_column``) in table order: what
    ``--tasks all`` means."""
    columns = {name: data["paper_column"] for name, (_, data)
               in _discovered(task_folders()).items() if data.get("paper_column") is not None}
    return tuple(sorted(columns, key=columns.__getitem__))


def own_leaderboards() -> dict[str, str]:
    """Tasks outside the paper whose YAML names a leaderboard table of their own
    (``leaderboard: toy``, i.e. ``leaderboards/toy.yaml``): task -> table. A run that scored
    such a task is a row of that table too."""
    return {name: data["leaderboard"] for name, (_, data) in _discovered(task_folders()).items()
            if data.get("leaderboard")}


def known_task_names() -> tuple[str, ...]:
    """Every task: the paper's in table order, then the others by name."""
    paper = paper_task_names()
    others = sorted(name for name in _discovered(task_folders()) if name not in paper)
    return (*paper, *others)


def resolve_task_names(spec: str) -> list[str]:
    """A comma list of task names to task names (``all``: the paper's benchmarks in table
    order, e.g. ``all,toy``); an unknown name raises."""
    parts = [part.strip() for part in spec.split(",") if part.strip()]
    paper = paper_task_names()
    names = [name for part in parts for name in (paper if part == "all" else (part,))]
    known = known_task_names()
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise ValueError(f"unknown task(s) {', '.join(unknown) or repr(spec)}; valid: all, "
                         f"{', '.join(known)}")
    return list(dict.fromkeys(names))


def task_spec(name: str) -> TaskSpec:
    """The parsed and checked YAML of task ``name``, with its module's code."""
    return _task_spec(name, task_folders())


@cache
def _task_spec(name: str, folders: tuple[Path, ...]) -> TaskSpec:
    discovered = _discovered(folders)
    if name not in discovered:
        resolve_task_names(name)
    path, data = discovered[name]
    benchmark = _benchmark_of(data.get("module"), path)
    transforms = _transforms(TRANSFORMS, benchmark, path)
    sources = {fmt: _source_spec(fmt, raw, f"{path}: sources.{fmt}", transforms)
               for fmt, raw in data["sources"].items()}
    return TaskSpec(
        name=name,
        title=data["title"],
        sources=sources,
        breakdown=tuple(data.get("breakdown", ())),
        benchmark=benchmark,
        transforms=transforms,
        paper_column=data.get("paper_column"),
        description=data.get("description", ""),
        prompt=data.get("prompt", ""),
        yaml_path=path,
    )


def _benchmark_of(module: str | None, yaml_path: Path) -> Benchmark:
    """``BENCHMARK`` of the module a YAML names (:data:`VIDEO_R1_RULES` when none)."""
    if module is None:
        return VIDEO_R1_RULES
    loaded = _module_file(yaml_path.parent / module) if module.endswith(".py") else \
        importlib.import_module(module)
    benchmark = getattr(loaded, "BENCHMARK", None)
    if not isinstance(benchmark, Benchmark):
        raise ValueError(f"{yaml_path}: module {module} defines no BENCHMARK (a "
                         f"p2r_eval.benchmarks.benchmark.Benchmark)")
    return benchmark


def _module_file(path: Path) -> ModuleType:
    """Import a benchmark's ``.py`` file from a task folder (once per process)."""
    name = f"p2r_task_{path.stem}_{zlib.crc32(str(path.resolve()).encode()):08x}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None or not path.is_file():
        raise ValueError(f"benchmark module {path} not found")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _transforms(shared: Mapping[str, Callable[..., Any]], benchmark: Benchmark,
                yaml_path: Path) -> dict[str, Callable[..., Any]]:
    clash = sorted(set(shared) & set(benchmark.transforms))
    if clash:
        raise ValueError(f"{yaml_path}: the module's transforms {clash} shadow shared ones")
    return {**shared, **benchmark.transforms}


def _source_spec(fmt: str, raw: dict[str, Any], where: str,
                 transforms: Mapping[str, Callable[..., Any]]) -> SourceSpec:
    if fmt not in FORMATS:
        raise ValueError(f"{where}: unknown format; expected one of {FORMATS}")
    check_mapping(raw["record"], where, transforms)
    if fmt == "video-r1" and "file" not in raw:
        raise ValueError(f"{where}: needs 'file'")
    if fmt == "official" and not ("folder" in raw and raw.get("annotations")):
        raise ValueError(f"{where}: needs 'folder' and 'annotations'")
    return SourceSpec(
        format=fmt,
        record=raw["record"],
        records=raw.get("records"),
        file=raw.get("file"),
        folder=raw.get("folder"),
        annotations=tuple(raw.get("annotations", ())),
        nested_keys=tuple(raw.get("nested_keys", ())),
        split=raw.get("split") or (raw.get("hub") or {}).get("split"),
        hub=raw.get("hub"),
        frame_folder_fps=_frame_folder_fps(raw.get("frame_folder_fps"), where),
    )


def _frame_folder_fps(value: Any, where: str) -> float | None:
    """A source's ``frame_folder_fps``: ``None`` or a positive number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{where}: frame_folder_fps must be a positive number, got {value!r}")
    return float(value)


def demo_data_root() -> Path:
    """The demo suite's data root, prepared on first use (see
    :mod:`p2r_eval.benchmarks.demo_suite`)."""
    from p2r_eval.benchmarks.demo_suite import prepare_demo_data

    return prepare_demo_data()


def load_task(name: str, data_root: Path | None = None, source_format: str | None = None
              ) -> LoadedTask:
    """Load one benchmark's items from ``data_root`` (``None``: the demo suite).

    Without ``source_format``, Video-R1's file wins when both formats are present (it is what
    the paper's tables were scored on). Raises :class:`AnnotationError` for a bad file or
    record and :class:`DataNotFoundError` when the benchmark is nowhere to be found.
    """
    spec = task_spec(name)
    root = Path(data_root).expanduser() if data_root is not None else demo_data_root()
    if not root.is_dir():
        raise DataNotFoundError(str(root), "data root is not a folder")
    formats = [source_format] if source_format else list(FORMATS)
    unknown = [fmt for fmt in formats if fmt not in FORMATS]
    if unknown:
        raise ValueError(f"unknown source format {unknown[0]!r}; expected one of {FORMATS}")
    if source_format and source_format not in spec.sources:
        raise DataNotFoundError(str(root), f"{name} has no {source_format} format; it has "
                                           f"{', '.join(spec.sources)}")
    available = [spec.sources[fmt] for fmt in formats if fmt in spec.sources]
    for source in available:
        found = local_annotations(source, root)
        if found is not None:
            return _loaded(spec, source, root, *found)
    hub_source = next((s for s in available if s.hub), None)
    if hub_source is None or not hub_fallback_enabled():
        disabled = "" if hub_source is None else f"; hub fallback off ({HUB_SWITCH}=0)"
        raise DataNotFoundError(str(root), f"{name}: {expected_layout(spec, formats)}{disabled}")
    try:
        check_hub_reachable(f"the {name} annotations ({hub_source.hub_settings()['path']})")
        annotations = read_hub(hub_source.hub_settings(), name)
    except HubUnreachableError as error:
        raise DataNotFoundError(str(root), f"{name}: {expected_layout(spec, formats)}; "
                                           f"then {error}") from None
    except DataNotFoundError as error:
        raise DataNotFoundError(str(root), f"{name}: {expected_layout(spec, formats)}; "
                                           f"then {error}") from error
    return _loaded(spec, hub_source, root, hub_source.media_folder(root), annotations)


def hub_fallback_enabled() -> bool:
    """False when ``P2R_HUB=0``: never ask the hub (offline machines, tests)."""
    return os.environ.get(HUB_SWITCH, "1") != "0"


def local_annotations(source: SourceSpec, root: Path
                      ) -> tuple[Path, list[AnnotationSource]] | None:
    """The media folder and the annotation sources of ``source`` under ``root``, if any."""
    if source.format == "video-r1":
        path = source.annotation_file(root)
        if not path.is_file():
            return None
        return root, [read_annotation_file(path, data_root=root, folder=root)]
    folder = source.media_folder(root)
    if not folder.is_dir():
        return None
    for pattern in source.annotations:
        matches = sorted(p for p in folder.glob(pattern) if not p.name.startswith("."))
        if matches:
            return folder, [read_annotation_file(p, data_root=root, folder=folder,
                                                 nested_keys=source.nested_keys,
                                                 split=source.split) for p in matches]
    return None


def _loaded(spec: TaskSpec, source: SourceSpec, root: Path, media_folder: Path,
            annotations: list[AnnotationSource]) -> LoadedTask:
    records = [record for annotation in annotations for record in annotation.records]
    items = build_items(spec.name, records, source.record,
                        MediaBase(media_folder, root, source.frame_folder_fps),
                        spec.transforms)
    return LoadedTask(
        name=spec.name,
        items=items,
        source_format=source.format,
        data_files={annotation.label: annotation.digest for annotation in annotations},
        media_root=media_folder,
    )


def expected_layout(spec: TaskSpec, formats: list[str]) -> str:
    """Where :func:`load_task` looked, in words (for the not-found error)."""
    places = []
    for fmt in formats:
        source = spec.sources.get(fmt)
        if source is None:
            continue
        if fmt == "video-r1":
            places.append(f"Video-R1 format: {source.file}")
        else:
            places.append(f"authors' format: {source.folder}/ with one of "
                          f"{', '.join(source.annotations)}")
    return "no annotations found; expected " + " or ".join(places) + " (docs/benchmarks.md)"
