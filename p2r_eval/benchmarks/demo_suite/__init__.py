"""The demo suite: a few records of each of the seven benchmarks, in their real formats, with
tiny synthetic videos made on first use.

``data/`` holds the annotation files exactly as a real data root would (``docs/benchmarks.md``):
Video-R1's ``eval_<name>.json`` for the five benchmarks that have one, the authors' formats
for VCR-Bench (``vcrbench/meta_info_video.json``) and TempCompass
(``tempcompass/questions/multi-choice.json``). :func:`prepare_demo_data` copies them into a
cache folder and writes every video (and MVBench's frame folder) the records name, with
:mod:`p2r_eval.media.synthetic_media`: 2-4 s, 8 fps, 64x48, the same bytes on every machine. It
adds the toy task: the first items of the toy suite's test split (``eval_toy.json``), which
the demo model (trained on the toy suite's training split) has never seen.
"""

from __future__ import annotations

import hashlib
import inspect
import shutil
import zlib
from pathlib import Path

from p2r_eval.benchmarks import toy_suite
from p2r_eval.benchmarks.toy_suite import scenes as toy_scenes
from p2r_eval.core.cache_root import build_once, cache_root
from p2r_eval.media import synthetic_media

DEMO_FILES = Path(__file__).resolve().parent / "data"
VIDEO_FPS = 8
VIDEO_SIZE = (64, 48)
FRAMES_PER_FOLDER = 12
COMPLETE_MARKER = ".complete"
TOY_ITEMS = 8


def demo_version() -> str:
    """A digest of everything the prepared folder depends on: the annotation files, the
    media settings and the synthetic media code."""
    digest = hashlib.sha256()
    for path in sorted(p for p in DEMO_FILES.rglob("*") if p.is_file()):
        digest.update(path.relative_to(DEMO_FILES).as_posix().encode())
        digest.update(path.read_bytes())
    digest.update(repr((VIDEO_FPS, VIDEO_SIZE, FRAMES_PER_FOLDER)).encode())
    digest.update(Path(synthetic_media.__file__).read_bytes())
    for module in (toy_suite, toy_scenes):
        digest.update(Path(inspect.getfile(module)).read_bytes())
    digest.update(str(TOY_ITEMS).encode())
    return digest.hexdigest()[:16]


def prepare_demo_data(root: Path | None = None) -> Path:
    """The demo data root, built on first use under ``root`` (default: the cache folder).

    Idempotent and safe to call from several processes at once: one builds the folder in a
    temporary sibling under a file lock and renames it into place; the others wait and reuse.
    """
    parent = Path(root) if root is not None else cache_root() / "demo"
    return build_once(parent / demo_version(), COMPLETE_MARKER, write_demo_data)


def write_demo_data(folder: Path) -> None:
    """The demo suite's records, media and toy items into ``folder``, marked complete last."""
    shutil.copytree(DEMO_FILES, folder)
    write_demo_media(folder)
    toy_suite.write_split(folder, "test", TOY_ITEMS, seed=0, records_file=toy_suite.TASK_FILE)
    (folder / COMPLETE_MARKER).write_text("ok\n")


def write_demo_media(data_root: Path) -> None:
    """Write each video or frame folder that the demo records under ``data_root`` name."""
    from p2r_eval.benchmarks.registry import load_task, paper_task_names

    media: dict[Path, str] = {}
    for name in paper_task_names():
        for item in load_task(name, data_root).items:
            if item.media is not None:
                media[item.media] = item.media_type
    for path, media_type in sorted(media.items()):
        write_demo_medium(path, media_type, seed=zlib.crc32(path.relative_to(data_root)
                                                            .as_posix().encode()))


def write_demo_medium(path: Path, media_type: str, seed: int) -> None:
    width, height = VIDEO_SIZE
    if media_type == "frames":
        synthetic_media.write_frame_folder(path, FRAMES_PER_FOLDER, width=width, height=height,
                                           seed=seed % 1000, suffix=".jpg")
    elif media_type == "image":
        synthetic_media.write_image(path, width=width, height=height, seed=seed % 1000)
    else:
        synthetic_media.write_video(path, seconds=2 + seed % 3, fps=VIDEO_FPS, width=width,
                                    height=height, seed=seed % 1000)
