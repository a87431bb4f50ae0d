"""perf/gpu_check.sh --dry-run: every GPU check's path runs on the CPU with the tiny config and
ends in the markdown table, so the script is known to work before a GPU is lent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_dry_run_writes_every_checks_row(tmp_path: Path) -> None:
    table = tmp_path / "out" / "gpu_check.md"
    finished = subprocess.run(
        ["bash", str(REPO / "perf" / "gpu_check.sh"), "--dry-run", "--workdir",
         str(tmp_path / "work"), "--out", str(table)],
        capture_output=True, text=True, timeout=1200,
        env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path),
             "PYTHON": sys.executable})
    assert finished.returncode == 0, finished.stdout + finished.stderr
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
            for line in table.read_text().splitlines()
            if line.startswith("| ") and not line.startswith("| check")}
    assert list(rows) == ["vision", "hf", "grpo", "serve"]
    logs = table.parent
    for name in ("vision", "hf", "grpo"):
        assert rows[name][3].startswith("dry run: "), rows[name]
        assert "failed" not in rows[name][3], (logs / f"gpu_check_{name}.log").read_text()
    vision = json.loads((logs / "gpu_check_vision.json").read_text())
    assert vision["identical"] and vision["narrow"] and vision["median_s"]["grouped"] > 0
    hf = json.loads((logs / "gpu_check_hf.json").read_text())
    assert (hf["items"], hf["frames"], hf["batch_size"]) == (2, 4, 2)
    assert hf["items_per_s"]["p2r"] > 0 and hf["items_per_s"]["one at a time"] > 0
    grpo = json.loads((logs / "gpu_check_grpo.json").read_text())
    assert set(grpo["median_step_s"]) == {"GRPO (--process-agnostic)", "PA-GRPO"}
    # The served check runs where this tree has `p2r-eval serve` and `--backend openai`,
    # else its row says what was skipped; it never fails.
    serve_verdict = rows["serve"][3]
    assert serve_verdict in ("dry run: -", "dry run: skipped"), (
        rows["serve"], (logs / "gpu_check_serve.log").read_text()[-3000:])
    if serve_verdict == "dry run: skipped":
        assert rows["serve"][2].startswith("skipped: ")
    else:
        serve = json.loads((logs / "gpu_check_serve.json").read_text())
        assert serve["served"] > 0 and serve["in_process"] > 0
