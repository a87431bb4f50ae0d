"""The paper's tables as data, their rendering rules, measured rows, CIs, compare and plots."""

from __future__ import annotations

import argparse
import re
from decimal import Decimal
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from p2r_eval.benchmarks import vsibench
from p2r_eval.cli import leaderboard as leaderboard_cli
from p2r_eval.core.stats import bootstrap_ci
from p2r_eval.core.untrusted import escape_markdown
from p2r_eval.eval.results import RunResults, Sample
from p2r_eval.eval.runstore import RunStore
from p2r_eval.media.input_policies import named_frame_policy
from p2r_eval.report.leaderboard import write_leaderboards
from p2r_eval.report.markdown import render_markdown
from p2r_eval.report.measured import measured_row_from_run
from p2r_eval.report.plots import plot_probe
from p2r_eval.report.tables import (
    LeaderboardError,
    column_marks,
    format_delta,
    load_table,
    round_one_decimal,
)

TASKS = ("vsibench", "videommmu", "mmvu", "vcrbench", "mvbench", "tempcompass", "videomme")
REPO = Path(__file__).resolve().parents[2]

# The paper's Table 1, cell by cell, with the marks the rendering rules give (they agree with
# the paper's "best on six of seven benchmarks": VSI-Bench tied with VideoRFT, MMVU second).
MAIN_EXPECTED = """
Open-Source 7B Models
LLaVA-OneVision-7B | 32.4 | 33.8 | 49.2 | - | 56.7 | - | 58.2 | -
LongVA-7B | 29.2 | 23.9 | - | - | - | 56.9 | 52.6 | -
Qwen2.5-VL-7B | 30.1 | 48.1 | 60.0 | 44.3 | 59.0 | 72.6 | 56.6 | 52.9
RFT on Qwen2.5-VL-7B
Video-R1 | <u>35.8</u> | 52.3 | 63.8 | 49.0 | 63.9 | 73.2 | 59.3 | 56.8
VideoChat-R1 | 33.9 | <u>54.0</u> | 63.0 | 49.0 | <u>67.9</u> | 72.5 | 57.7 | 56.9
Time-R1 | 29.0 | 51.0 | 62.9 | 49.6 | 63.1 | 73.7 | 59.3 | 55.5
VersaVid-R1 | 33.7 | 51.9 | 64.3 | <u>49.8</u> | 62.9 | <u>74.0</u> | 58.8 | 56.5
VideoRFT | **36.8** | 51.1 | **68.5** | 49.6 | 62.1 | 73.7 | <u>59.8</u> | <u>57.4</u>
VideoP2R (Ours) | **36.8** | **55.0** | <u>65.4</u> | **51.0** | **68.1** | **74.5** | **60.0** | **58.7**
"""  # noqa: E501

# The ablation table: values, Avg and Δ as printed; marks over VideoP2R and the variants.
ABLATION_EXPECTED = r"""
Two-stage Training
VideoP2R (Ours) | 36.8 | **55.0** | **65.4** | **51.0** | **68.1** | **74.5** | **60.0** | **58.7** | +5.8
– SFT-only | 35.2 | 53.7 | 61.6 | 46.9 | 62.3 | 72.4 | 57.2 | 55.6 | +2.7
– RL-only | 35.8 | <u>54.6</u> | 64.6 | 46.3 | 60.8 | 73.8 | 55.9 | 56.0 | +3.1
Process-aware Modeling
VideoP2R (Ours) | 36.8 | **55.0** | **65.4** | **51.0** | **68.1** | **74.5** | **60.0** | **58.7** | +5.8
– process-agnostic RL (GRPO) | <u>37.4</u> | 53.6 | 62.8 | 48.3 | 63.8 | 73.3 | 55.4 | 56.4 | +3.5
– process-agnostic SFT (no RL) | 34.3 | 48.9 | 61.6 | 47.3 | 59.0 | 69.7 | 54.0 | 53.5 | +0.6
Reward Design
VideoP2R (Ours) | 36.8 | **55.0** | **65.4** | **51.0** | **68.1** | **74.5** | **60.0** | **58.7** | +5.8
– without R\_R (reasoning reward) | 36.0 | 51.6 | 60.3 | 46.8 | 62.1 | 72.5 | 57.9 | 55.3 | +2.4
– without R\_P (perception reward) | <u>37.4</u> | 53.6 | 62.8 | 48.3 | 63.8 | 73.3 | 55.4 | 56.4 | +3.5
– without R\_L (length reward) | **40.0** | 52.7 | 63.2 | 48.4 | <u>65.5</u> | <u>73.9</u> | **60.0** | <u>57.7</u> | +4.8
– without separation | 37.1 | 53.2 | <u>64.9</u> | <u>48.8</u> | 65.0 | 73.2 | <u>59.7</u> | 57.4 | +4.5
Baseline: Qwen2.5-VL-7B | 30.1 | 48.1 | 60.0 | 44.3 | 59.0 | 72.6 | 56.6 | 52.9 |
"""  # noqa: E501

PAPER_SETTINGS = {
    "protocol": "video-r1",
    "prompt_style": "p2r",
    "prompt_hash": "abc",
    "frame_policy": named_frame_policy("video-r1").as_dict(),
    "decoding": {
        "max_new_tokens": 1024,
        "do_sample": False,
        "temperature": None,
        "top_p": None,
        "seed": 0,
    },
    "seed": 0,
    "limit": None,
    "data_root": "/data/Video-R1-eval",  # the benchmarks, not the demo suite
    "data_files": {},
}


def expected_cells(text: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("|")] for line in text.strip().splitlines()]


def table_cells(markdown: str) -> list[list[str]]:
    """The body of the first markdown table: cells split on unescaped pipes, footnote markers
    removed from the name; a group heading row becomes its bare heading."""
    text = markdown[markdown.index("\n|") + 1 :]
    lines = text[: text.find("\n\n")].splitlines()
    rows = []
    for line in lines[2:]:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        cells[0] = re.sub(r"<sup>[\d,]+</sup>$", "", cells[0])
        if all(c == "" for c in cells[1:]):
            rows.append([cells[0].strip("*")])
        else:
            rows.append(cells)
    return rows


def footnotes(markdown: str) -> dict[int, str]:
    return {int(n): text for n, text in re.findall(r"^(\d+)\. (.*)$", markdown, re.M)}


def write_run(
    root: Path,
    samples: dict[str, list[Sample]],
    *,
    name: str = "demo-model",
    settings: dict | None = None,
    scores: dict[str, float | None] | None = None,
    finished: bool = True,
) -> Path:
    """A run folder as the evaluation writes it; task scores computed from the samples
    (VSI-Bench with the Video-R1 aggregate) unless ``scores`` overrides them."""
    store = RunStore(root)
    tasks = {}
    for task, records in samples.items():
        for record in records:
            store.append_sample(task, record.model_copy(update={"prompt_hash": "abc",
                                                                "output": ""}))
        scored = [r for r in records if r.score is not None]
        aggregate = vsibench.VIDEO_R1_AGGREGATION.statistic if task == "vsibench" else None
        if scores and task in scores:
            score = scores[task]
        elif aggregate:
            score = 100 * aggregate(scored)
        else:
            score = 100 * sum(r.score or 0.0 for r in scored) / len(scored)
        tasks[task] = {
            "score": score,
            "n": len(records),
            "n_scored": len(scored),
            "n_errors": sum(1 for r in records if r.error),
            "breakdown": {},
            "wall_time_s": 1.0,
        }
    store.write_results(RunResults.model_validate(
        {
            "schema": 1,
            "model": {"spec": f"demo:{name}", "name": name, "fingerprint": {}},
            "settings": {**PAPER_SETTINGS, **(settings or {})},
            "package": {"version": "0.1.0", "git_commit": None},
            "tasks": tasks,
            "started_at": "2026-01-01T00:00:00+00:00",
            "finished_at": "2026-01-01T01:00:00+00:00" if finished else None,
        }
    ))
    return root


def item_scores(prefix: str, scores: list[float | None]) -> list[Sample]:
    return [
        Sample(
            id=f"{prefix}{i}",
            score=s,
            answer_type="multiple choice",
            error="video missing" if s is None else None,
        )
        for i, s in enumerate(scores)
    ]


def full_run_samples(seed: int = 0, accuracy: float = 0.5, n: int = 40
                     ) -> dict[str, list[Sample]]:
    rng = np.random.default_rng(seed)
    samples = {
        task: item_scores(f"{task}-", (rng.random(n) < accuracy).astype(float).tolist())
        for task in TASKS
    }
    regression = [
        Sample(id=f"na{i}", score=float(v), answer_type="regression")
        for i, v in enumerate(rng.random(n // 2).round(1))
    ]
    samples["vsibench"] = samples["vsibench"][: n // 2] + regression
    return samples


# --------------------------------------------------------------------------- the paper tables


def test_main_table_reproduces_every_cell_and_mark_of_the_paper():
    rendered = render_markdown(load_table("main"))
    assert table_cells(rendered) == expected_cells(MAIN_EXPECTED)


def test_ablation_table_reproduces_every_cell_mark_and_delta_of_the_paper():
    rendered = render_markdown(load_table("ablation"))
    assert table_cells(rendered) == expected_cells(ABLATION_EXPECTED)


def test_tables_carry_their_provenance_and_column_groups():
    main, ablation = load_table("main"), load_table("ablation")
    assert main.provenance == "VideoP2R, CVPR Findings 2026, Table 1"
    assert ablation.provenance == "VideoP2R, CVPR Findings 2026, ablation table"
    for table in (main, ablation):
        assert [c.task for c in table.columns] == list(TASKS)
        assert [c.group for c in table.columns] == ["Video Reasoning"] * 4 + [
            "Video Understanding"
        ] * 3
    rendered = render_markdown(main)
    assert "Source: VideoP2R, CVPR Findings 2026, Table 1." in rendered
    assert "Video Reasoning: VSI-Bench, VideoMMMU, MMVU, VCR-Bench" in rendered


def test_qwen_avg_keeps_the_printed_value_and_footnotes_the_recomputed_one():
    qwen = load_table("main").row("Qwen2.5-VL-7B")
    assert qwen.avg == Decimal("52.9")
    assert qwen.computed_avg == Decimal("53.0")
    rendered = render_markdown(load_table("main"))
    qwen_line = next(line for line in rendered.splitlines() if line.startswith("| Qwen2.5"))
    number = int(re.search(r"<sup>(\d+)</sup>", qwen_line).group(1))
    assert "mean of the seven printed values is 53.0" in footnotes(rendered)[number]


def test_only_the_qwen_rows_print_an_avg_other_than_the_mean_of_their_values():
    for name in ("main", "ablation"):
        rows = load_table(name).rows
        mismatched = {row.name for row in rows if row.printed_avg not in (None, row.computed_avg)}
        assert mismatched <= {"Qwen2.5-VL-7B", "Baseline: Qwen2.5-VL-7B"}


def test_rows_from_the_video_r1_paper_share_one_footnote():
    rendered = render_markdown(load_table("main"))
    llava = next(line for line in rendered.splitlines() if line.startswith("| LLaVA"))
    longva = next(line for line in rendered.splitlines() if line.startswith("| LongVA"))
    marker = re.search(r"<sup>\d+</sup>", llava).group(0)
    assert marker in longva
    assert "Video-R1 paper's table" in footnotes(rendered)[int(marker[5:-6])]


@pytest.mark.parametrize("name", ["main", "ablation"])
def test_committed_markdown_equals_the_regenerated_markdown(name):
    committed = (REPO / "leaderboards" / f"{name}.md").read_text(encoding="utf-8")
    assert committed == render_markdown(load_table(name))


def test_a_table_with_a_malformed_value_is_refused_naming_the_file(tmp_path):
    source = (REPO / "leaderboards" / "main.yaml").read_text(encoding="utf-8")
    (tmp_path / "main.yaml").write_text(source.replace("32.4,", "32.45,"), encoding="utf-8")
    with pytest.raises(LeaderboardError, match=r"main\.yaml.*more than one decimal"):
        load_table("main", tmp_path)
    (tmp_path / "main.yaml").write_text(source.replace("32.4, ", ""), encoding="utf-8")
    with pytest.raises(LeaderboardError, match="6 scores for 7 columns"):
        load_table("main", tmp_path)
    with pytest.raises(LeaderboardError, match="no leaderboard table 'nope'"):
        load_table("nope")


# --------------------------------------------------------------------------- the rules


def test_marks_use_dense_ranking_and_ties_share_them():
    values = [Decimal(v) for v in ("36.8", "35.8", "36.8", "30.1", "35.8")]
    assert column_marks(values, [True] * 5) == ["best", "second", "best", None, "second"]


def test_marks_ignore_missing_values_and_rows_that_do_not_compete():
    values = [Decimal("50.0"), None, Decimal("60.0"), Decimal("40.0")]
    assert column_marks(values, [True, True, False, True]) == ["best", None, None, "second"]
    assert column_marks([Decimal("1.0")], [True]) == ["best"]
    assert column_marks([None, None], [True, True]) == [None, None]


def test_displayed_values_round_half_up_from_the_recorded_decimal():
    assert round_one_decimal(35.05) == Decimal("35.1")
    assert round_one_decimal(52.95) == Decimal("53.0")
    assert round_one_decimal(0.25) == Decimal("0.3")
    assert round_one_decimal(41.04999) == Decimal("41.0")


def test_marks_are_decided_on_displayed_values():
    # 58.66 and 58.74 both display as 58.7: they tie with VideoP2R's printed 58.7.
    shown = [round_one_decimal(v) for v in (58.66, 58.74)] + [Decimal("58.7")]
    assert column_marks(shown, [True] * 3) == ["best"] * 3


def test_deltas_are_signed_with_one_decimal():
    assert format_delta(Decimal("5.8")) == "+5.8"
    assert format_delta(Decimal("-1.20")) == "-1.2"
    assert format_delta(Decimal("0")) == "+0.0"
    assert format_delta(None) == "-"


def test_untrusted_text_is_made_inert():
    assert escape_markdown("a|b") == r"a\|b"
    assert escape_markdown("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert(1)&gt;"
    assert escape_markdown("**bold** _x_ [l](u)") == r"\*\*bold\*\* \_x\_ \[l\](u)"
    assert escape_markdown("two\nlines") == "two lines"


# --------------------------------------------------------------------------- measured rows


def test_a_measured_row_renders_with_a_footnote_per_differing_setting(tmp_path):
    run = write_run(
        tmp_path / "run",
        full_run_samples(),
        name="VideoP2R (Ours)",
        settings={
            "prompt_style": "r1",
            "frame_policy": {"num_frames": 16, "fps": None, "max_pixels": 200704},
            "decoding": {
                "max_new_tokens": 1024,
                "do_sample": True,
                "temperature": 0.7,
                "top_p": 0.9,
            },
            "limit": 40,
        },
    )
    rendered = render_markdown(load_table("main"), [measured_row_from_run(run, n_resamples=200)])
    line = next(line for line in rendered.splitlines() if "(measured:" in line)
    assert line.startswith("| VideoP2R (Ours) (measured: video-r1, r1 prompt, 16 frames)<sup>")
    numbers = re.search(r"<sup>([\d,]+)</sup>", line)[1].split(",")
    notes = [footnotes(rendered)[int(n)] for n in numbers]
    assert notes == [
        "input policy uniform, 16 frames, at most 200704 pixels (paper: video-r1 (2 fps, 4-32 "
        "frames (even), 128-256 x 28x28 pixels, resized with bicubic))",
        "sampled decoding, temperature 0.7, top\\_p 0.9 (paper: greedy-equivalent, "
        "temperature 0.1 / top\\_p 0.001)",
        "prompt style r1 (paper: p2r, the model's own)",
        "first 40 items of each benchmark only (paper: all items)",
    ]
    assert "*Measured with p2r-eval*" in rendered


def test_a_run_with_the_paper_settings_gets_no_footnote(tmp_path):
    run = write_run(tmp_path / "run", full_run_samples(), name="VideoP2R (Ours)")
    assert measured_row_from_run(run, n_resamples=50).footnotes == ()


def test_a_measured_row_shows_its_scores_and_computed_avg(tmp_path):
    samples = full_run_samples()
    run = write_run(tmp_path / "run", samples)
    row = measured_row_from_run(run, n_resamples=50)
    rendered = render_markdown(load_table("ablation"), [row])
    measured = [re.sub(r"\*\*|</?u>", "", cell) for cell in table_cells(rendered)[-1]]
    expected_scores = [row.scores[task] for task in TASKS]
    expected_avg = round_one_decimal(sum(expected_scores) / 7)
    assert measured[1:8] == [str(round_one_decimal(s)) for s in expected_scores]
    assert measured[8] == str(expected_avg)
    assert measured[9] == format_delta(expected_avg - Decimal("52.9"))


def test_partial_runs_show_dashes_and_no_avg(tmp_path):
    samples = {task: s for task, s in full_run_samples().items() if task in ("mvbench", "mmvu")}
    samples["videomme"] = item_scores("vm", [None, None])
    run = write_run(tmp_path / "run", samples, scores={"videomme": None}, finished=False)
    results = RunStore(run).read_results()
    assert results is not None
    results.tasks["mmvu"].complete = False
    RunStore(run).write_results(results)
    row = measured_row_from_run(run, n_resamples=50)
    rendered = render_markdown(load_table("main"), [row])
    measured = table_cells(rendered)[-1]
    assert measured[1] == measured[2] == measured[4] == measured[6] == measured[7] == "-"
    assert measured[3] != "-" and measured[5] != "-"
    assert measured[8] == "-"
    assert "run not finished: scores are partial" in row.footnotes
    assert "Video-MME: no score yet (0 of 2 items scored)" in row.footnotes
    assert "MMVU: not every item has finished; the score covers those that did" in row.footnotes


def test_a_measured_row_competes_for_the_marks(tmp_path):
    samples = {"mvbench": item_scores("mv", [1.0] * 9 + [0.0])}  # 90.0 beats 68.1
    run = write_run(tmp_path / "run", samples)
    rendered = render_markdown(load_table("main"), [measured_row_from_run(run, n_resamples=50)])
    cells = table_cells(rendered)
    assert cells[-1][5] == "**90.0**"
    videop2r = next(row for row in cells if row[0] == "VideoP2R (Ours)")
    assert videop2r[5] == "<u>68.1</u>"
    videochat = next(row for row in cells if row[0] == "VideoChat-R1")
    assert videochat[5] == "67.9"


def test_untrusted_run_names_are_escaped_in_the_table(tmp_path):
    run = write_run(tmp_path / "run", {"mvbench": item_scores("mv", [1.0, 0.0])})
    row = measured_row_from_run(run, name="evil | <script>alert(1)</script>", n_resamples=50)
    rendered = render_markdown(load_table("main"), [row])
    assert "<script>" not in rendered
    assert r"evil \| &lt;script&gt;alert(1)&lt;/script&gt;" in rendered
    assert all(len(cells) == 9 for cells in table_cells(rendered) if len(cells) > 1)


def test_the_ci_of_a_measured_row_is_computed_from_its_samples(tmp_path):
    samples = full_run_samples(n=60)
    run = write_run(tmp_path / "run", samples)
    row = measured_row_from_run(run, n_resamples=500, seed=4)
    mv_scored = [s for s in samples["mvbench"] if s.score is not None]
    direct = bootstrap_ci(mv_scored, n_resamples=500, seed=4)
    assert row.intervals["mvbench"] == direct
    vsi_score = vsibench.VIDEO_R1_AGGREGATION.statistic
    vsi = bootstrap_ci(samples["vsibench"], vsi_score, n_resamples=500, seed=4)
    assert row.intervals["vsibench"] == vsi
    rendered = render_markdown(load_table("main"), [row])
    expected = f"[{100 * direct.low:.1f}, {100 * direct.high:.1f}]"
    ci_line = next(line for line in rendered.splitlines() if "| MVBench" in line)
    assert expected in ci_line
    assert "## Measured rows: 95% bootstrap confidence intervals" in rendered


def test_an_official_vsibench_run_gets_the_ci_of_the_authors_aggregate(tmp_path):
    rng = np.random.default_rng(3)
    types = ["object_rel_direction_easy", "object_rel_direction_hard", "route_planning",
             "object_counting"]
    records = [Sample(id=f"v{i}", score=float(rng.random() < 0.3 + 0.2 * (i % 4)),
                      answer_type="multiple choice", meta={"question_type": types[i % 4]})
               for i in range(80)]
    official = vsibench.OFFICIAL_AGGREGATION.statistic
    run = write_run(tmp_path / "run", {"vsibench": records},
                    settings={"protocol": "official"}, scores={"vsibench": 100 * official(records)})
    row = measured_row_from_run(run, n_resamples=300, seed=1)
    assert "vsibench" not in row.interval_notes  # the plain mean would not reproduce the score
    assert row.intervals["vsibench"] == bootstrap_ci(records, official, n_resamples=300, seed=1)


def test_unscored_items_are_excluded_from_the_ci_and_counted(tmp_path):
    samples = {"mmvu": item_scores("m", [1.0, 0.0, None, 1.0, None, 1.0])}
    row = measured_row_from_run(write_run(tmp_path / "run", samples), n_resamples=100)
    interval = row.intervals["mmvu"]
    assert (interval.n_used, interval.n_excluded) == (4, 2)
    assert "MMVU: 2 of 6 items failed (no model output)" in row.footnotes


def test_a_ci_that_does_not_describe_the_reported_score_is_withheld(tmp_path):
    samples = {"mvbench": item_scores("mv", [1.0, 0.0, 1.0, 0.0])}
    run = write_run(tmp_path / "run", samples, scores={"mvbench": 75.0})
    row = measured_row_from_run(run, n_resamples=50)
    assert "mvbench" not in row.intervals
    assert "results.json reports 75.0" in row.interval_notes["mvbench"]
    assert "results.json reports 75.0" in render_markdown(load_table("main"), [row])


def test_a_folder_without_results_is_a_clear_error(tmp_path):
    with pytest.raises(LeaderboardError, match="no results.json"):
        measured_row_from_run(tmp_path)


# --------------------------------------------------------------------------- files, plots, CLI


def png_pixels(path: Path) -> np.ndarray:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(path)


def test_write_leaderboards_writes_markdown_and_bars(tmp_path):
    run_a = write_run(tmp_path / "a", full_run_samples(seed=1, accuracy=0.6), name="model-a")
    run_b = write_run(tmp_path / "b", full_run_samples(seed=2, accuracy=0.4), name="model-b")
    paths = write_leaderboards(
        [run_a, run_b],
        tmp_path / "out",
        "ablation",
        ["A"],
        n_resamples=100,
    )
    assert [p.name for p in paths] == ["ablation.md", "ablation_bars.png"]
    markdown = paths[0].read_text(encoding="utf-8")
    assert "| A (measured:" in markdown and "| model-b (measured:" in markdown
    pixels = png_pixels(paths[1])
    assert pixels.shape[0] > 300 and pixels.shape[1] > 600
    assert pixels[..., :3].std() > 0.05  # something is drawn


def test_plot_probe_draws_raw_versus_text_only(tmp_path):
    path = plot_probe({"vsibench": (30.0, 33.0), "mmvu": (60.0, 64.5)}, tmp_path / "p.png")
    assert png_pixels(path).shape[1] > 600


def test_bars_of_a_partial_run_mark_missing_benchmarks(tmp_path):
    run = write_run(tmp_path / "run", {"mmvu": item_scores("m", [1.0, 0.0, 1.0])})
    paths = write_leaderboards([run], tmp_path / "out", n_resamples=50)
    assert png_pixels(paths[1]).shape[0] > 300


def test_more_names_than_runs_is_an_error(tmp_path):
    run = write_run(tmp_path / "run", {"mmvu": item_scores("m", [1.0])})
    with pytest.raises(LeaderboardError, match=r"2 names \(--as\) given for 1 runs"):
        write_leaderboards([run], tmp_path / "out", names=["a", "b"])


def cli() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="p2r-eval")
    leaderboard_cli.add_subcommands(parser.add_subparsers(dest="command", required=True))
    return parser


def run_cli(*argv: str) -> int:
    args = cli().parse_args([str(a) for a in argv])
    return args.func(args)


def test_cli_leaderboard_prints_the_table_with_a_run(tmp_path, capsys):
    run = write_run(tmp_path / "run", full_run_samples(), name="mine")
    assert run_cli("leaderboard", run / "results.json", "--as", "Mine", "--resamples", "100") == 0
    out = capsys.readouterr().out
    assert "| Mine (measured: video-r1, p2r prompt, video-r1 inputs)" in out


def test_cli_leaderboard_regenerates_both_tables(tmp_path, capsys):
    assert run_cli("leaderboard", "--table", "both", "--out", tmp_path) == 0
    for name in ("main", "ablation"):
        assert (tmp_path / f"{name}.md").read_text() == render_markdown(load_table(name))
    assert not list(tmp_path.glob("*.png"))


def test_cli_compare_prints_a_p_value_per_benchmark(tmp_path, capsys):
    run_a = write_run(tmp_path / "a", full_run_samples(seed=1, accuracy=0.8), name="strong")
    run_b = write_run(
        tmp_path / "b", full_run_samples(seed=2, accuracy=0.3), name="weak", settings={"limit": 40}
    )
    assert run_cli("compare", run_a, run_b, "--resamples", "500") == 0
    out = capsys.readouterr().out
    assert "A: strong" in out and "B: weak" in out
    rows = [line for line in out.splitlines() if line.startswith("| MVBench")]
    assert len(rows) == 1
    p_value = float(rows[0].rstrip(" |").rsplit("|", 1)[1])
    assert 0 < p_value < 0.05
    assert "Settings differ (A vs B): limit: None vs 40" in out


def test_cli_compare_reports_mismatched_item_sets(tmp_path, capsys):
    run_a = write_run(tmp_path / "a", {"mmvu": item_scores("m", [1.0, 0.0, 1.0, 1.0])})
    shorter = item_scores("m", [0.0, 0.0, 1.0]) + [Sample(id="x", score=1.0, answer_type="OCR")]
    run_b = write_run(tmp_path / "b", {"mmvu": shorter})
    assert run_cli("compare", run_a, run_b, "--tasks", "mmvu", "--resamples", "200") == 0
    out = capsys.readouterr().out
    mmvu = next(line for line in out.splitlines() if line.startswith("| MMVU"))
    assert [cell.strip() for cell in mmvu.split("|")[2:5]] == ["3", "66.7", "33.3"]
    assert "MMVU: left out items only in A: 1, only in B: 1" in out


def test_cli_errors_are_one_clear_line_and_exit_code_two(tmp_path, capsys):
    assert run_cli("leaderboard", tmp_path / "missing") == 2
    assert "no results.json" in capsys.readouterr().err
    run = write_run(tmp_path / "a", {"mmvu": item_scores("m", [1.0])})
    assert run_cli("compare", run, run, "--tasks", "vsibench") == 2
    assert "not in both runs" in capsys.readouterr().err


def test_cli_help_shows_examples(capsys):
    for command in ("leaderboard", "compare"):
        with pytest.raises(SystemExit):
            cli().parse_args([command, "--help"])
        assert "examples:" in capsys.readouterr().out
