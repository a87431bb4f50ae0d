"""perf/per_item_floor.py: the decoding it times is exactly the frames an exact pipeline needs
(each wanted frame back to its keyframe, no frame twice), and its figures add up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import pytest

from p2r_eval.media.video import uniform_indices

REPO = Path(__file__).resolve().parents[2]


def frames_an_exact_decode_needs(clip: Path, frames: int) -> int:
    """The union, over the wanted frames, of the display frames from the keyframe at or before
    each one up to it."""
    with av.open(str(clip)) as container:
        packets = sorted((packet.pts, packet.is_keyframe)
                         for packet in container.demux(container.streams.video[0])
                         if packet.size)
    needed: set[int] = set()
    for target in uniform_indices(len(packets), frames):
        start = max(rank for rank in range(target + 1) if packets[rank][1])
        needed.update(range(start, target + 1))
    return len(needed)


@pytest.mark.slow
def test_floor_times_the_frames_an_exact_decode_needs(tmp_path: Path) -> None:
    figures = tmp_path / "floor.json"
    finished = subprocess.run(
        [sys.executable, str(REPO / "perf" / "per_item_floor.py"), "--clip", "15s",
         "--workdir", str(tmp_path), "--frames", "6", "--max-pixels", "50176",
         "--max-new-tokens", "3", "--repeats", "1", "--json", str(figures)],
        capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    floor = json.loads(figures.read_text())
    (clip,) = tmp_path.glob("clip_15s_*.mp4")
    needed = frames_an_exact_decode_needs(clip, 6)
    assert floor["frames_decoded"] == needed
    assert 6 < needed < 450  # it seeks past frames no wanted frame needs
    assert floor["new_tokens"] == 3
    assert floor["decode_cpu_s"] > 0 and floor["generate_cpu_s"] > 0
    assert floor["wall_s"] == pytest.approx(
        (floor["decode_cpu_s"] + floor["generate_cpu_s"]) / floor["cores"])
    assert f"decoding {needed} frames" in finished.stdout
