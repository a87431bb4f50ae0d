"""How big and how fast the ``p2r-eval view`` site of a full-size run is.

Builds a run the size of the paper's evaluation from the demo suite: the Video-R1-format
annotation files are replicated to each benchmark's full item count (their records keep
pointing at the demo videos, so thumbnails are made for few distinct videos; their size per
video is reported separately), outputs of realistic length come from a replay file. Then
times ``p2r-eval view``, reports the site's size, and opens the largest sample list and a
sample page in headless chromium (``/usr/bin/chromium``), reporting the time to the load event.

    .venv/bin/python perf/view_site.py [--scale 1.0] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from p2r_eval.benchmarks.registry import demo_data_root

FULL_SIZES = {"vsibench": 5130, "videommmu": 900, "mmvu": 1000, "mvbench": 4000,
              "videomme": 2700}
"""Items per benchmark in Video-R1's evaluation files (the paper's tables)."""
WORDS = ("the square moves left then right across a grey background while a bar stays at the "
         "top edge and the camera does not move so the answer follows").split()
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def full_size_data(root: Path, scale: float) -> dict[str, list[dict]]:
    """Copy the demo suite into ``root`` with each annotation file replicated to full size."""
    shutil.copytree(demo_data_root(), root)
    records = {}
    for task, size in FULL_SIZES.items():
        path = root / f"eval_{task}.json"
        originals = json.loads(path.read_text())
        grown = []
        for number in range(round(size * scale)):
            record = dict(originals[number % len(originals)])
            record["problem_id"] = number + 1  # VideoMMMU tracks are id ranges from 1
            grown.append(record)
        path.write_text(json.dumps(grown))
        records[task] = grown
    return records


def replay_outputs(records: dict[str, list[dict]], path: Path) -> None:
    rng = random.Random(0)
    with path.open("w") as handle:
        for task, task_records in records.items():
            for record in task_records:
                letter = rng.choice("ABCD")
                output = (f"<observation>{sentence(rng, 80)}</observation>"
                          f"<think>{sentence(rng, 170)} so the answer is {letter}.</think>"
                          f"<answer>{letter}</answer>")
                handle.write(json.dumps({"task": task, "id": record["problem_id"],
                                         "output": output}) + "\n")


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def load_times(pages: list[Path]) -> dict[str, float]:
    """Milliseconds from navigation start to the end of the load event, per page."""
    from playwright.sync_api import sync_playwright

    times = {}
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
        page = browser.new_page()
        for path in pages:
            page.goto(path.as_uri())  # warm the browser's process once per page kind
            page.goto(path.as_uri())
            times[str(path)] = page.evaluate(
                "performance.getEntriesByType('navigation')[0].loadEventEnd")
        browser.close()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full sizes")
    parser.add_argument("--keep", type=Path, default=None, help="keep the run and site here")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="p2r-view-perf-"))
    work.mkdir(parents=True, exist_ok=True)
    records = full_size_data(work / "data", args.scale)
    replay_outputs(records, work / "replay.jsonl")
    cli = [sys.executable, "-m", "p2r_eval.cli"]
    subprocess.run([*cli, "--model", f"replay:{work / 'replay.jsonl'}", "--tasks",
                    ",".join(FULL_SIZES), "--data-root", str(work / "data"), "--output",
                    str(work / "run"), "--quiet"], check=True, stdout=subprocess.DEVNULL)
    samples = sum(len(task_records) for task_records in records.values())
    started = time.perf_counter()
    subprocess.run([*cli, "view", str(work / "run"), "--output", str(work / "site")], check=True)
    build_s = time.perf_counter() - started
    site = work / "site"
    frames = [folder for folder in (site / "frames").iterdir() if folder.is_dir()]
    frame_bytes = folder_bytes(site / "frames")
    pages_bytes = folder_bytes(site / "runs")
    print(f"samples: {samples}; p2r-eval view took {build_s:.1f} s "
          f"({1000 * build_s / samples:.2f} ms per sample)")
    print(f"site: {folder_bytes(site) / 1e6:.1f} MB; pages and list data "
          f"{pages_bytes / 1e6:.1f} MB ({pages_bytes / samples / 1e3:.1f} kB per sample)")
    thumbnails = sum(1 for _ in (site / "frames").rglob("*.jpg"))
    print(f"thumbnails: {len(frames)} distinct videos, {thumbnails} thumbnails, "
          f"{frame_bytes / 1e3 / max(1, thumbnails):.1f} kB per thumbnail")
    (run_pages,) = list((site / "runs").iterdir())
    largest = max(FULL_SIZES, key=lambda name: FULL_SIZES[name])
    for path, ms in load_times([run_pages / "index.html", run_pages / largest / "index.html",
                                run_pages / largest / "0.html"]).items():
        print(f"load {Path(path).relative_to(site)}: {ms:.0f} ms")
    if args.keep is None:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
