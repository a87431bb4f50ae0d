"""The seven benchmarks: their definitions (``tasks/<name>.yaml``) and loading them into items.

A task YAML holds the facts: where the data comes from in each format, how a record maps to
an item (:mod:`p2r_eval.benchmarks.formats.mapping`), the categories of its breakdown and the names
of
its scoring rule and aggregation per protocol (:mod:`p2r_eval.benchmarks.protocols`).

:func:`load_task` looks under the data root, in order, for Video-R1's file
(``DIR/eval_<name>.json``), then for the authors' release (``DIR/<folder>/``, the patterns in
the YAML), then asks the hub for the authors' annotations (videos are never downloaded; set
``P2R_HUB=0`` to never ask); ``docs/benchmarks.md`` documents the layouts. With no data root
it loads the demo suite.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import p2r_tasks
import yaml

from p2r_eval.benchmarks.formats.errors import AnnotationError, DataNotFoundError
from p2r_eval.benchmarks.formats.mapping import MediaBase, build_items, check_mapping
from p2r_eval.benchmarks.formats.records import AnnotationSource, read_annotation_file, read_hub
from p2r_eval.core.hub import HubUnreachableError, check_hub_reachable
from p2r_eval.core.items import Item

__all__ = [
    "FORMATS",
    "TASK_NAMES",
    "AnnotationError",
    "DataNotFoundError",
    "EXTRA_TASK_NAMES",
    "LoadedTask",
    "SourceSpec",
    "TaskSpec",
    "demo_data_root",
    "load_task",
    "resolve_task_names",
    "task_spec",
]

TASK_NAMES: tuple[str, ...] = (
    "vsibench", "videommmu", "mmvu", "vcrbench", "mvbench", "tempcompass", "videomme",
)
"""The paper's seven benchmarks, in table order: what ``--tasks all`` means."""
EXTRA_TASK_NAMES: tuple[str, ...] = ("toy",)
"""Tasks outside the paper's tables: ``toy``, the synthetic suite
(:mod:`p2r_eval.benchmarks.toy_suite`)."""
FORMATS = ("video-r1", "official")
TASKS_DIR = Path(p2r_tasks.__file__).resolve().parent
HUB_SWITCH = "P2R_HUB"


@dataclass(frozen=True)
class SourceSpec:
    """Where one format's annotations are and how a record maps to an item.

    Video-R1 format: ``file`` in the data root. Authors' format: ``annotations`` (glob
    patterns, first match wins) in ``DATA_ROOT/folder``, TempCompass-style ``nested_keys``,
    the ``split`` of a saved ``DatasetDict`` (default: the hub's), and ``hub`` for
    ``load_dataset``.
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


@dataclass(frozen=True)
class TaskSpec:
    name: str
    title: str
    sources: dict[str, SourceSpec]
    breakdown: tuple[str, ...]
    scoring: dict[str, dict[str, str]]
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


def resolve_task_names(spec: str) -> list[str]:
    """A comma list of task names to task names (``all``: the seven benchmarks in table
    order, e.g. ``all,toy``); an unknown name raises."""
    parts = [part.strip() for part in spec.split(",") if part.strip()]
    names = [name for part in parts for name in (TASK_NAMES if part == "all" else (part,))]
    known = TASK_NAMES + EXTRA_TASK_NAMES
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise ValueError(f"unknown task(s) {', '.join(unknown) or repr(spec)}; valid: all, "
                         f"{', '.join(known)}")
    return list(dict.fromkeys(names))


@cache
def task_spec(name: str) -> TaskSpec:
    """The parsed and checked ``tasks/<name>.yaml``."""
    if name not in TASK_NAMES + EXTRA_TASK_NAMES:
        resolve_task_names(name)
    path = TASKS_DIR / f"{name}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if data.get("name") != name:
        raise ValueError(f"{path}: name is {data.get('name')!r}, expected {name!r}")
    sources = {fmt: _source_spec(fmt, raw, f"{path}: sources.{fmt}")
               for fmt, raw in data["sources"].items()}
    for protocol, rules in data["scoring"].items():
        if set(rules) != {"item", "aggregate"}:
            raise ValueError(f"{path}: scoring.{protocol} needs exactly 'item' and 'aggregate'")
    return TaskSpec(
        name=name,
        title=data["title"],
        sources=sources,
        breakdown=tuple(data.get("breakdown", ())),
        scoring=data["scoring"],
        description=data.get("description", ""),
        prompt=data.get("prompt", ""),
        yaml_path=path,
    )


def _source_spec(fmt: str, raw: dict[str, Any], where: str) -> SourceSpec:
    if fmt not in FORMATS:
        raise ValueError(f"{where}: unknown format; expected one of {FORMATS}")
    check_mapping(raw["record"], where)
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
    )


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
        check_hub_reachable(f"the {name} annotations ({hub_source.hub['path']})")
        annotations = read_hub(hub_source.hub, name)
    except HubUnreachableError as error:
        raise DataNotFoundError(str(root), f"{name}: {expected_layout(spec, formats)}; "
                                           f"then {error}") from None
    except DataNotFoundError as error:
        raise DataNotFoundError(str(root), f"{name}: {expected_layout(spec, formats)}; "
                                           f"then {error}") from error
    return _loaded(spec, hub_source, root, root / hub_source.folder, annotations)


def hub_fallback_enabled() -> bool:
    """False when ``P2R_HUB=0``: never ask the hub (offline machines, tests)."""
    return os.environ.get(HUB_SWITCH, "1") != "0"


def local_annotations(source: SourceSpec, root: Path
                      ) -> tuple[Path, list[AnnotationSource]] | None:
    """The media folder and the annotation sources of ``source`` under ``root``, if any."""
    if source.format == "video-r1":
        path = root / source.file
        if not path.is_file():
            return None
        return root, [read_annotation_file(path, data_root=root, folder=root)]
    folder = root / source.folder
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
    items = build_items(spec.name, records, source.record, MediaBase(media_folder, root))
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
