"""Annotation files to plain records: JSON lists, JSON nested by keys (TempCompass), JSON lines,
parquet, ``datasets`` folders saved with ``save_to_disk``, and the hub as a last resort.

Every record comes back as a dict with three bookkeeping keys added: ``_source`` (the file,
relative to the data root, or the hub config), ``_source_folder`` / ``_source_stem`` (its
first folder and its stem, which some benchmarks use as a category: VideoMMMU's track
folders, MVBench's per-task files) and ``_index`` (the record's position in its file).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from p2r_eval.benchmarks.formats.errors import AnnotationError, DataNotFoundError
from p2r_eval.core.jsonio import NotUTF8Error, parse_json, utf8_text
from p2r_eval.core.provenance import file_sha256

JSON_SUFFIXES = (".json",)
JSONL_SUFFIXES = (".jsonl",)
PARQUET_SUFFIXES = (".parquet",)


@dataclass(frozen=True)
class AnnotationSource:
    """One annotation file (or hub config) read: its label, its content digest, its records."""

    label: str
    digest: str
    records: list[dict[str, Any]]


def tree_sha256(folder: Path) -> str:
    """A digest of every file in ``folder`` (names and contents), for saved datasets."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(file_sha256(path).encode())
    return digest.hexdigest()


def read_annotation_file(
    path: Path,
    *,
    data_root: Path,
    folder: Path,
    nested_keys: Sequence[str] = (),
    split: str | None = None,
) -> AnnotationSource:
    """Read one annotation file or saved-dataset folder into records (see module doc).

    The source's label is ``path`` relative to ``data_root``; the ``_source*`` keys of its
    records are relative to ``folder``, the benchmark's folder.
    """
    label = relative_label(path, data_root)
    if path.is_dir():
        records, digest = _read_saved_dataset(path, label, split), tree_sha256(path)
    elif path.suffix in JSON_SUFFIXES:
        records, digest = _read_json(path, label, nested_keys), file_sha256(path)
    elif path.suffix in JSONL_SUFFIXES:
        records, digest = _read_jsonl(path, label), file_sha256(path)
    elif path.suffix in PARQUET_SUFFIXES:
        records, digest = _read_parquet(path, label), file_sha256(path)
    else:
        raise AnnotationError(label, f"unsupported annotation file type {path.suffix!r}")
    return AnnotationSource(label, digest,
                            with_bookkeeping(records, label, relative_label(path, folder)))


def relative_label(path: Path, base: Path) -> str:
    return path.relative_to(base).as_posix() if path.is_relative_to(base) else path.as_posix()


def with_bookkeeping(records: list[Any], label: str, source: str) -> list[dict[str, Any]]:
    """Check every record is an object and add the ``_source*`` and ``_index`` keys."""
    parts = PurePosixPath(source)
    out = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise AnnotationError(label, f"expected an object, got {type(record).__name__}",
                                  record=f"#{index}")
        out.append({**record, "_source": label, "_source_folder": parts.parts[0],
                    "_source_stem": parts.stem, "_index": index})
    return out


def _read_json(path: Path, label: str, nested_keys: Sequence[str]) -> list[Any]:
    try:
        data = parse_json(utf8_text(path.read_bytes()))
    except NotUTF8Error as error:
        raise AnnotationError(label, str(error)) from error
    except json.JSONDecodeError as error:
        raise AnnotationError(label, f"invalid JSON: {error}") from error
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and nested_keys:
        return flatten_nested(data, tuple(nested_keys), label)
    raise AnnotationError(label, f"expected a JSON list of records, got {type(data).__name__}")


def flatten_nested(data: Any, keys: tuple[str, ...], label: str) -> list[dict[str, Any]]:
    """``{k1: {k2: [record, ...]}}`` to records carrying ``keys`` as fields (TempCompass's
    ``questions/<task>.json`` is ``{video_id: {dim: [{question, answer}, ...]}}``)."""
    if not keys:
        if not isinstance(data, list):
            raise AnnotationError(label, f"expected a list of records, got {type(data).__name__}")
        return data
    if not isinstance(data, dict):
        raise AnnotationError(label, f"expected an object keyed by {keys[0]}, "
                                     f"got {type(data).__name__}")
    records = []
    for key, value in data.items():
        for record in flatten_nested(value, keys[1:], label):
            if not isinstance(record, dict):
                raise AnnotationError(label, f"expected an object, got {type(record).__name__}",
                                      record=f"{keys[0]}={key}")
            records.append({**record, keys[0]: key})
    return records


def _read_jsonl(path: Path, label: str) -> list[Any]:
    records = []
    for number, raw_line in enumerate(path.read_bytes().split(b"\n"), start=1):
        try:
            line = utf8_text(raw_line)
            if line.strip():
                records.append(parse_json(line))
        except NotUTF8Error as error:
            raise AnnotationError(label, "not UTF-8 text", record=f"line {number}") from error
        except json.JSONDecodeError as error:
            raise AnnotationError(label, f"invalid JSON: {error}",
                                  record=f"line {number}") from error
    return records


def _read_parquet(path: Path, label: str) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except Exception as error:  # pyarrow raises many types for a bad file
        raise AnnotationError(label, f"unreadable parquet: {error}") from error


def _read_saved_dataset(path: Path, label: str, split: str | None) -> list[dict[str, Any]]:
    """A folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as error:  # datasets raises many types for a bad folder
        raise AnnotationError(label, f"not a saved dataset: {error}") from error
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise AnnotationError(label, f"saved dataset has splits {sorted(loaded)}, "
                                         f"not {split!r}")
        loaded = loaded[split]
    return loaded.to_list()


def read_hub(hub: dict[str, Any], task: str) -> list[AnnotationSource]:
    """The benchmark's annotations from the Hugging Face hub (``datasets.load_dataset``).

    ``hub`` is the task's ``hub`` entry: ``path``, ``split`` and ``configs`` (a list; a
    dataset without named configs lists ``null``). Only annotations come from the hub:
    videos are never downloaded.
    """
    import datasets

    sources = []
    for config in hub.get("configs") or [None]:
        label = f"hub:{hub['path']}" + (f"/{config}" if config else "") + f"@{hub['split']}"
        try:
            loaded = datasets.load_dataset(hub["path"], config, split=hub["split"])
        except Exception as error:  # network, auth, missing repo: all the same here
            raise DataNotFoundError(label, f"{task}: load_dataset failed: "
                                           f"{type(error).__name__}: {error}") from error
        records = with_bookkeeping(loaded.to_list(), label, config or hub["split"])
        # datasets' own content hash of the downloaded files (there is no public accessor)
        sources.append(AnnotationSource(label, loaded._fingerprint, records))
    return sources
