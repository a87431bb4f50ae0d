"""A frame folder's rate is a fact of its benchmark's data: it is written in the task YAML
(``frame_folder_fps`` of a source), carried on the item and used wherever the folder is
decoded (inline or in a decode worker, by the viewer, by lmms-eval's p2r model). A frame
folder whose task gives no rate fails its item with an error naming the item."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from p2r_eval.benchmarks.registry import TASK_PATH_VARIABLE, load_task, task_spec
from p2r_eval.core.items import item_from_row, item_to_row
from p2r_eval.media.requests import MediaError, RequestBuilder, prefetch_requests
from p2r_eval.media.synthetic_media import write_frame_folder
from p2r_eval.media.video import FramePolicy
from p2r_eval.report.view.frames import media_key

REPO = Path(__file__).resolve().parents[2]
LMMS_PYTHON = REPO / ".venv-lmms" / "bin" / "python"
FOLDER_FRAMES = 12

TASK_YAML = """\
name: stills
title: Stills
sources:
  video-r1:
    file: eval_stills.json
{rate}    record:
      id: problem_id
      question: problem
      options: {{fn: option_list, field: options}}
      answer: {{fn: answer_tag, field: solution}}
      answer_type: problem_type
      solution: solution
      media: path
      media_type: {{fn: video_r1_media_type, field: data_type}}
"""


def write_stills_task(root: Path, rate: str | None) -> Path:
    """A task of one frame-folder item (its YAML giving ``rate``, or no rate) and its data
    root; P2R_TASK_PATH is set by the caller."""
    tasks, data = root / "tasks", root / "data"
    tasks.mkdir(parents=True)
    line = "" if rate is None else f"    frame_folder_fps: {rate}\n"
    (tasks / "stills.yaml").write_text(TASK_YAML.format(rate=line))
    write_frame_folder(data / "clips" / "clip", FOLDER_FRAMES)
    record = {"problem_id": 7, "problem": "How many?", "options": None,
              "problem_type": "numerical", "solution": "<answer>2</answer>",
              "path": "./clips/clip.mp4", "data_type": "frame"}
    (data / "eval_stills.json").write_text(json.dumps([record]))
    return tasks


def test_mvbench_frame_folders_carry_the_rate_its_yaml_gives():
    sources = task_spec("mvbench").sources
    assert {fmt: source.frame_folder_fps for fmt, source in sources.items()} == {
        "video-r1": 3.0, "official": 3.0}
    items = load_task("mvbench").items  # the demo suite: a frame folder among the videos
    rates = {(item.media_type, item.frame_folder_fps) for item in items}
    assert rates == {("video", None), ("frames", 3.0)}
    folder_item = next(item for item in items if item.media_type == "frames")
    assert item_from_row(item_to_row(folder_item)) == folder_item


def test_the_yaml_rate_reaches_the_decoder_inline_and_in_decode_workers(tmp_path, monkeypatch):
    tasks = write_stills_task(tmp_path, "2")
    monkeypatch.setenv(TASK_PATH_VARIABLE, str(tasks))
    (item,) = load_task("stills", tmp_path / "data").items
    assert (item.media_type, item.frame_folder_fps) == ("frames", 2.0)
    builder = RequestBuilder("p2r", FramePolicy(fps=1.0))
    inline = builder(item)
    assert inline.frames is not None and len(inline.frames) == FOLDER_FRAMES // 2  # 6 s at 1 fps
    assert inline.fps == pytest.approx(1.0)
    ((_, in_worker),) = list(prefetch_requests([item], builder, workers=1))
    assert not isinstance(in_worker, MediaError)
    assert in_worker.fps == inline.fps and (in_worker.frames == inline.frames).all()


def test_a_frame_folder_of_a_task_without_a_rate_fails_its_item_naming_it(tmp_path, monkeypatch):
    tasks = write_stills_task(tmp_path, None)
    monkeypatch.setenv(TASK_PATH_VARIABLE, str(tasks))
    (item,) = load_task("stills", tmp_path / "data").items
    assert item.frame_folder_fps is None
    with pytest.raises(MediaError, match=r"^stills/7: .*frame_folder_fps"):
        RequestBuilder("p2r", FramePolicy(num_frames=4))(item)


@pytest.mark.parametrize("rate", ["0", "-3", "fast", "true"])
def test_a_yaml_rate_that_is_not_a_positive_number_is_refused(tmp_path, monkeypatch, rate):
    tasks = write_stills_task(tmp_path, rate)
    monkeypatch.setenv(TASK_PATH_VARIABLE, str(tasks))
    with pytest.raises(ValueError, match=r"stills\.yaml: sources\.video-r1: frame_folder_fps"):
        task_spec("stills")


def test_view_thumbnails_of_a_frame_folder_are_keyed_by_its_rate(tmp_path, tiny_video):
    folder = write_frame_folder(tmp_path / "clip", 4)
    policy = FramePolicy(num_frames=4)
    assert media_key(folder, policy, 3.0) != media_key(folder, policy, 2.0)
    assert media_key(tiny_video, policy) == media_key(tiny_video, policy, None)


LMMS_FRAMES_SCRIPT = """
import sys
from pathlib import Path
from p2r_eval.interop.lmms_model import visual_arrays
from p2r_eval.media.video import FramePolicy
from p2r_eval.models.base import BackendError
folder = Path(sys.argv[1])
(frames, fps), = visual_arrays([str(folder)], FramePolicy(fps=1.0), None, "stills/7", 2.0)[0]
print(len(frames), fps)
try:
    visual_arrays([str(folder)], FramePolicy(fps=1.0), None, "other/0")
except BackendError as error:
    print(error)
"""


@pytest.mark.skipif(not LMMS_PYTHON.is_file(),
                    reason=".venv-lmms not set up (bash scripts/setup_lmms_env.sh)")
def test_lmms_eval_p2r_model_reads_a_frame_folder_at_its_documents_rate(tmp_path):
    folder = write_frame_folder(tmp_path / "clip", FOLDER_FRAMES)
    result = subprocess.run([str(LMMS_PYTHON), "-c", LMMS_FRAMES_SCRIPT, str(folder)],
                            capture_output=True, text=True, timeout=600, check=True, cwd=REPO)
    counted, refused = result.stdout.strip().splitlines()
    assert counted == f"{FOLDER_FRAMES // 2} 1.0"
    assert refused.startswith("other/0: ") and "frame_folder_fps" in refused
