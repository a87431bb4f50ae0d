"""``p2r-eval view``: the static site, checked in a real headless browser (Debian's chromium
driven by Playwright) on a run made from a replay file whose outputs are chosen here, judged
for error attribution by the local fake judge server through the real openai SDK."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from p2r_eval.benchmarks.registry import load_task
from p2r_eval.cli.main import main
from p2r_eval.eval.runstore import RunStore
from p2r_eval.media.requests import sample_media
from p2r_eval.models.demo import ensure_demo_model
from p2r_eval.report.view.runs import recorded_frame_policy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from judge_server import FakeJudgeServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "view"
UPDATE_SCREENSHOTS = "P2R_UPDATE_SCREENSHOTS"
"""Set to 1 to refresh the screenshots in docs/view; otherwise they go to a temporary folder,
so that a test run leaves the checkout as it was."""
KEY = "test-key"
INJECTED = ("<script>window.__p2r_injected = 1;</script>"
            "<img src=x onerror=\"window.__p2r_injected = 2\"><b>bold</b>")

# mvbench demo items: id -> reference letter 1:C, 1201:A, 1601:A, 2601:B
REPLAY_OUTPUTS = {
    # right, well formed
    "1": "<observation>Someone is moving across the frame.</observation>"
         "<think>The person moves, which is option C.</think><answer>C</answer>",
    # wrong; the observation misses the correct option's text: a perception error; HTML inside
    "1201": f"<observation>A square. {INJECTED}</observation>"
            "<think>Nothing scrolls, so B.</think><answer>B</answer>",
    # wrong although the observation holds the correct option's text: a reasoning error, and
    # the think segment concludes A while the answer gives B: a think-answer mismatch
    "1601": "<observation>It moves to the right.</observation>"
            "<think>The square moves, so the answer is A.</think><answer>B</answer>",
    # no template at all
    "2601": "Down and to the right, I think.",
}


def browser_or_skip():
    if not CHROMIUM.exists():
        pytest.skip(f"no {CHROMIUM}: run scripts/setup_browser.sh (Debian's chromium) to run "
                    "the browser tests")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright (dev extra)")
    return playwright


def write_replay(path: Path, outputs: dict[str, str]) -> None:
    path.write_text("".join(json.dumps({"task": "mvbench", "id": item_id, "output": output})
                            + "\n" for item_id, output in outputs.items()))


@pytest.fixture(scope="module")
def judged_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("view-run")
    replay = base / "replay.jsonl"
    write_replay(replay, REPLAY_OUTPUTS)
    run = base / "run"
    with pytest.MonkeyPatch.context() as patch, FakeJudgeServer(api_key=KEY) as server:
        patch.setenv("OPENAI_API_KEY", KEY)
        code = main(["--model", f"replay:{replay}", "--tasks", "mvbench", "--output", str(run),
                     "--attribute-errors", "--judge", "openai", "--judge-base-url",
                     server.openai_base_url, "--judge-model", "fake-judge-1",
                     "--judge-cache", str(base / "judge-cache"), "--quiet"])
    assert code == 0
    return run


@pytest.fixture(scope="module")
def site(judged_run: Path) -> Path:
    output = judged_run.parent / "site"
    assert main(["view", str(judged_run), "--output", str(output)]) == 0
    return output


@pytest.fixture(scope="module")
def page():
    playwright = browser_or_skip()
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.errors = errors
        yield page
        browser.close()


def run_page(site: Path) -> Path:
    (run_folder,) = (site / "runs").iterdir()
    return run_folder / "index.html"


def test_the_run_records_each_wrong_answers_sufficiency_verdict(judged_run):
    verdicts = RunStore(judged_run).read_verdicts("mvbench")
    assert {key: value["sufficient"] for key, value in verdicts.items()} == {
        "1201": False, "1601": True}


def test_view_imports_no_torch(judged_run, tmp_path):
    code = ("import sys\nfrom p2r_eval.cli.main import main\n"
            f"assert main(['view', {str(judged_run)!r}, '--output', {str(tmp_path / 's')!r}, "
            "'--no-frames']) == 0\nassert 'torch' not in sys.modules, 'torch imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_run_page_shows_the_runs_numbers(site, judged_run, page):
    results = json.loads((judged_run / "results.json").read_text())
    entry = results["tasks"]["mvbench"]
    page.goto(run_page(site).as_uri())
    row = page.locator("table.results tr[data-task=mvbench]")
    assert row.locator("td.score").inner_text() == f"{entry['score']:.2f}"
    assert entry["score"] == 25.0  # one of four right
    analysis = page.locator("table.analysis tr[data-task=mvbench]").inner_text()
    attribution = entry["analysis"]["attribution"]
    assert (attribution["perception"], attribution["reasoning"]) == (1, 1)
    assert f"{attribution['perception']} / {attribution['reasoning']} / " in analysis
    assert "VideoP2R (Ours)" in page.locator("table.leaderboard").inner_text()
    save_screenshot(page, "run-page.png")
    assert page.errors == []


def save_screenshot(page, name: str) -> None:
    """A full-page screenshot, into docs/view with P2R_UPDATE_SCREENSHOTS=1."""
    if os.environ.get(UPDATE_SCREENSHOTS) == "1":
        folder = DOCS_SCREENSHOTS
    else:
        folder = Path(tempfile.mkdtemp(prefix="p2r-screenshots-"))
    page.screenshot(path=str(folder / name), full_page=True)
    assert (folder / name).stat().st_size > 0


def shown_count(page) -> int:
    return int(page.locator("#shown-count").inner_text())


def test_filters_list_the_samples_the_data_says(site, judged_run, page):
    samples = RunStore(judged_run).load_samples("mvbench")
    page.goto((run_page(site).parent / "mvbench" / "index.html").as_uri())
    assert shown_count(page) == len(samples) == page.locator("tr.sample-row").count() == 4
    page.select_option("#filter-status", "wrong")
    wrong = [s for s in samples.values() if s.score == 0.0]
    assert shown_count(page) == len(wrong) == page.locator("tr.sample-row").count() == 3
    expected = {"perception error": ["1201"], "reasoning error": ["1601"],
                "think-answer mismatch": ["1601"], "template deviation": ["2601"]}
    for kind, ids in expected.items():
        page.select_option("#filter-kind", kind)
        listed = page.locator("tr.sample-row td:nth-child(2)").all_inner_texts()
        assert listed == ids, kind
        option = page.locator(f"#filter-kind option[value='{kind}']").inner_text()
        assert option == f"{kind} ({len(ids)})"
    page.select_option("#filter-kind", "perception error")
    save_screenshot(page, "filtered-list.png")
    page.select_option("#filter-kind", "")
    page.select_option("#filter-status", "")
    page.fill("#filter-search", "moves to the right")
    assert page.locator("tr.sample-row td:nth-child(2)").all_inner_texts() == ["1601"]
    assert page.errors == []


def sample_page(site: Path, item_id: str) -> Path:
    ids = [item.id for item in load_task("mvbench").items]
    return run_page(site).parent / "mvbench" / f"{ids.index(item_id)}.html"


def test_a_sample_page_shows_its_frames_and_highlighted_segments(site, judged_run, page):
    page.goto(sample_page(site, "1").as_uri())  # a video
    results = RunStore(judged_run).read_results()
    assert results is not None
    settings = results.settings
    item = next(item for item in load_task("mvbench").items if item.id == "1")
    sampled = sample_media(item.media, item.media_type, recorded_frame_policy(settings))
    frames = page.locator("#frames img")
    assert frames.count() == len(sampled.timestamps) > 1
    for index in (0, frames.count() - 1):
        assert frames.nth(index).evaluate("(img) => img.complete && img.naturalWidth") == 96
    captions = page.locator("#frames figcaption").all_inner_texts()
    assert captions == [f"{t:.1f} s" for t in sampled.timestamps]
    page.goto(sample_page(site, "1601").as_uri())
    assert page.locator("#output .seg-observation").inner_text() == (
        "<observation>It moves to the right.</observation>")
    assert page.locator("#output .seg-think").inner_text() == (
        "<think>The square moves, so the answer is A.</think>")
    assert page.locator("#output .seg-answer").inner_text() == "<answer>B</answer>"
    text = page.locator("main").inner_text()
    assert "reasoning error" in text and "think-answer mismatch" in text
    assert "observation sufficient\tyes" in text
    save_screenshot(page, "sample-page.png")
    assert page.errors == []


def test_html_in_a_model_output_is_shown_as_text_and_runs_nothing(site, page):
    page.goto(sample_page(site, "1201").as_uri())
    assert INJECTED in page.locator("#output").inner_text()
    assert page.locator("#output script, #output img, #output b").count() == 0
    assert page.evaluate("window.__p2r_injected") is None
    page.goto((run_page(site).parent / "mvbench" / "index.html").as_uri())
    page.fill("#filter-search", "p2r_injected")
    assert shown_count(page) == 1
    assert page.evaluate("window.__p2r_injected") is None


def test_a_frame_folder_item_gets_thumbnails_from_its_frames(site, page):
    item = next(item for item in load_task("mvbench").items if item.id == "1601")
    assert item.media_type == "frames"
    page.goto(sample_page(site, "1601").as_uri())
    assert page.locator("#frames img").count() > 1


def test_two_runs_side_by_side_list_disagreements_first(judged_run, tmp_path, page):
    other_replay = tmp_path / "other.jsonl"
    outputs = dict(REPLAY_OUTPUTS, **{"1": "<answer>A</answer>", "1201": "<answer>A</answer>"})
    write_replay(other_replay, outputs)
    other = tmp_path / "other"
    assert main(["--model", f"replay:{other_replay}", "--tasks", "mvbench", "--output",
                 str(other), "--quiet"]) == 0
    site = tmp_path / "site"
    assert main(["view", str(judged_run), str(other), "--output", str(site), "--no-frames"]) == 0
    (page_path,) = (site / "compare").glob("*/mvbench.html")
    page.goto(page_path.as_uri())
    assert page.locator("#disagreements").inner_text() == "2"
    rows = page.locator("table.pairs tbody tr")
    assert [rows.nth(i).locator("td").first.inner_text() for i in range(2)] == ["1", "1201"]
    assert [rows.nth(i).locator("td").last.inner_text() for i in range(2)] == ["A", "B"]
    assert "difference" in page.locator("#paired-test").inner_text()


def test_case_card_is_an_svg_with_frames_and_segments(judged_run, tmp_path, page):
    site = tmp_path / "site"
    assert main(["view", str(judged_run), "--output", str(site), "--card", "mvbench/1201"]) == 0
    (card,) = (site / "cards").glob("*.svg")
    page.goto(card.as_uri())
    assert page.locator("image").count() == 8
    assert page.locator("script").count() == 0
    text = page.locator("svg").text_content()
    assert "<script>window.__p2r_injected = 1;</script>" in text
    assert "Nothing scrolls, so B." in text
    assert page.evaluate("window.__p2r_injected") is None


def test_bad_card_names_the_sample(judged_run, tmp_path, capsys):
    code = main(["view", str(judged_run), "--output", str(tmp_path / "s"), "--no-frames",
                 "--card", "mvbench/no-such-id"])
    assert code == 2
    assert "mvbench has no sample 'no-such-id'" in capsys.readouterr().err



@pytest.mark.slow
def test_a_training_run_shows_its_plots_and_each_checkpoints_run(tmp_path, page):
    from p2r_train.tracking.dynamics import plot_training_dynamics

    run_dir = tmp_path / "train"
    for step in (1, 2):
        checkpoint = run_dir / f"checkpoint-{step}"
        shutil.copytree(ensure_demo_model(), checkpoint)
        (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (run_dir / "trainer_state.json").write_text(json.dumps({"log_history": [
        {"step": 1, "loss": 2.0, "learning_rate": 1e-5}, {"step": 2, "loss": 1.5,
                                                          "learning_rate": 1e-5}]}))
    plot_training_dynamics(run_dir)
    assert main(["--model", str(run_dir), "--tasks", "mvbench", "--limit", "1", "--frames", "4",
                 "--max-new-tokens", "4", "--quiet"]) == 0
    site = tmp_path / "site"
    assert main(["view", str(run_dir), "--output", str(site), "--no-frames"]) == 0
    (training_page,) = (site / "training").glob("*/index.html")
    page.goto(training_page.as_uri())
    for plot in ("dynamics.png", "scores_by_step.png"):
        image = page.locator(f"img[src='{plot}']")
        assert image.evaluate("(img) => img.complete && img.naturalWidth") > 100
    links = page.locator("#checkpoints tbody a")
    assert links.all_inner_texts() == ["step 1", "step 2"]
    links.nth(1).click()
    step_two = json.loads((run_dir / "eval" / "checkpoint-2" / "results.json").read_text())
    assert page.locator("h1").inner_text() == step_two["model"]["name"]
    assert page.errors == []


@pytest.mark.slow
def test_serve_serves_the_site_on_localhost(judged_run, tmp_path):
    import urllib.request

    site = tmp_path / "site"
    server = subprocess.Popen(
        [sys.executable, "-m", "p2r_eval.cli", "view", str(judged_run), "--output", str(site),
         "--no-frames", "--serve", "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        lines = [server.stdout.readline(), server.stdout.readline()]
        url = lines[1].split()[1]
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "index.html", timeout=30) as response:
            assert (site / "index.html").read_bytes() == response.read()
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_judge_graded_sample_shows_the_judges_reply_as_text(tmp_path):
    items = [item for item in load_task("vcrbench").items
             if item.answer_type != "multiple choice"]
    replay = tmp_path / "replay.jsonl"
    replay.write_text("".join(json.dumps({"task": "vcrbench", "id": item.id,
                                          "output": f"<answer>{item.answer} <b>x</b></answer>"})
                              + "\n" for item in items))
    run = tmp_path / "run"
    with pytest.MonkeyPatch.context() as patch, FakeJudgeServer(api_key=KEY) as server:
        patch.setenv("OPENAI_API_KEY", KEY)
        assert main(["--model", f"replay:{replay}", "--tasks", "vcrbench", "--output", str(run),
                     "--judge", "openai", "--judge-base-url", server.openai_base_url,
                     "--judge-model", "fake-judge-1", "--judge-cache", str(tmp_path / "cache"),
                     "--quiet"]) == 0
    samples = [json.loads(line) for line in (run / "samples" / "vcrbench.jsonl").open()]
    judged = [s for s in samples if (s.get("rule") or "").endswith(":judge")]
    assert judged and all("<verdict>" in s["judge_reply"] for s in judged)
    assert main(["view", str(run), "--output", str(tmp_path / "site"), "--no-frames"]) == 0
    (run_folder,) = (tmp_path / "site" / "runs").iterdir()
    ids = [item.id for item in load_task("vcrbench").items]
    page = (run_folder / "vcrbench" / f"{ids.index(judged[0]['id'])}.html").read_text()
    assert "judge&#39;s reply" in page or "judge's reply" in page
    assert "&lt;verdict&gt;" in page and "<verdict>" not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page
