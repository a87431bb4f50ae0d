#!/usr/bin/env bash
# Every GPU check the issues ask for, in one script, with a markdown table of the results.
#
#   bash perf/gpu_check.sh                      # on a GPU machine: all checks (timing below)
#   bash perf/gpu_check.sh --only hf            # some of them: vision, hf, grpo, serve (commas)
#   bash perf/gpu_check.sh --dry-run            # the same path on a CPU with the tiny config
#   bash perf/gpu_check.sh --fetch-wheels       # on a machine with PyPI: the wheels a GPU
#                                               # machine without p2r's dependencies needs
#
# Checks (each row of the table says what ran, what it measured and the goal):
#   vision Qwen2.5-VL-7B's vision tower (random weights) on 8 videos of 32 frames, with p2r's
#          grouped window attention against transformers' per-window loop
#          (perf/bench_vision_windows.py): seconds, and the outputs bit for bit the same (the
#          row fails otherwise).
#   hf     the hf backend at Qwen2.5-VL-7B's size (random weights, perf/random_checkpoint.py):
#          batched and prefetched (p2r-eval's path) against one item at a time, 32 frames
#          (perf/bench_hf_batching.py): items/s (goal: at least 4x) and the GPU busy fraction
#          while decoding overlaps generation.
#   grpo   PA-GRPO against plain GRPO (perf/bench_pa_grpo.py): step time (goal: at most 1.03x)
#          and peak GPU memory, at the 7B's width. Both trainers live in one process and take
#          turns, each with its AdamW states: at the full 28 layers that is more than one
#          H200 holds, so the text depth is cut to GRPO_LAYERS (default 4) layers.
#   serve  the served backend: `p2r-eval serve` with `p2r-eval --backend openai --concurrency
#          16` against the same model in-process (`--batch-size 16`), items/s of the eval
#          loop (results.json's per-task wall time). Skipped, saying why, when FastAPI, uvicorn or
#          openai is missing.
#
# --dry-run runs the same steps on the CPU with the tiny config (the demo-size checkpoint,
# a few items, frames and tokens), so the script is known to run (tests/project/test_gpu_check.py).
# Its figures mean nothing. A check that fails writes its row as failed, with its log, and
# the others still run. Output: --out (default $OUT/gpu_check.md when $OUT is set, else
# gpu_check.md), its logs and JSON files beside it.
#
# On a GPU machine without p2r's dependencies (the lent H200s: no PyAV, TRL, datasets,
# FastAPI; transformers 5.17), carry the folder .whl made by --fetch-wheels (56 MB, Python
# 3.12, the versions of requirements/main.lock; torch stays the machine's): its wheels are
# installed into a temporary folder on PYTHONPATH, and p2r itself is put on PYTHONPATH from
# this checkout under its import names (p2r_eval, p2r_train, ...). A preflight then imports
# everything the checks use and stops in seconds if something is missing. The table is
# rewritten after each check, so a run stopped at a time limit keeps the rows it finished.
# With the device tool (one command at most 10 minutes, at most 8 files back), one call with
# carry [".whl"] and timeout_s 600 runs all four (on an H200 in 2026-12, hf took 3.2 min and
# grpo 1.4 min; serve, then with 20 s clips and the server started after them, was stopped by
# the 530 s limit of that run during its in-process half):
#   timeout 560 bash perf/gpu_check.sh --workdir /tmp/gc/work --out /tmp/gc/out/gpu_check.md;
#   cp /tmp/gc/out/gpu_check.md $OUT/; tar czf $OUT/gpu_check_logs.tgz -C /tmp/gc/out .
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

DRY_RUN=0
ONLY=vision,hf,grpo,serve
OUT_FILE=${OUT:+$OUT/gpu_check.md}
OUT_FILE=${OUT_FILE:-gpu_check.md}
WORKDIR=${TMPDIR:-/tmp}/p2r-gpu-check
GRPO_LAYERS=${GRPO_LAYERS:-4}
WHEELS=.whl
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) DRY_RUN=1 ;;
    --only) ONLY=$2; shift ;;
    --out) OUT_FILE=$2; shift ;;
    --workdir) WORKDIR=$2; shift ;;
    --fetch-wheels) FETCH=1 ;;
    -h|--help) sed -n '2,/^set /{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $1 (--help)" >&2; exit 2 ;;
  esac
  shift
done

# What the lent machines lack or hold at another version than requirements/main.lock (their
# image has torch 2.11, transformers 5.17, accelerate 1.15, numpy, PIL, tabulate, pyyaml,
# matplotlib, httpx ...), at the lock's versions, for Python 3.12 on x86-64. torch stays theirs.
WHEEL_NAMES=(transformers accelerate regex av trl datasets dill multiprocess fastapi starlette
             uvicorn opentelemetry-api pydantic pydantic-core annotated-types typing-inspection
             openai jiter sniffio httpx2 httpcore2 truststore)
locked_spec() {  # package name: NAME==VERSION as requirements/main.lock pins it
  grep -m1 -i "^$1==" requirements/main.lock | cut -d' ' -f1 | grep . \
    || { echo "gpu_check.sh: $1 is not pinned in requirements/main.lock" >&2; return 1; }
}
if [ "${FETCH:-0}" = 1 ]; then
  rm -rf "$WHEELS"; mkdir -p "$WHEELS"
  grep -qx "/$WHEELS/" .git/info/exclude 2>/dev/null || echo "/$WHEELS/" >> .git/info/exclude
  for name in "${WHEEL_NAMES[@]}"; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform any -d "$WHEELS" "$(locked_spec "$name")" \
      || exit 1
  done
  du -sh "$WHEELS"
  echo "carry $WHEELS (run tool: carry [\"$WHEELS\"]) and run: bash perf/gpu_check.sh"
  exit 0
fi

if [ -x .venv/bin/python ] && [ "$DRY_RUN" = 1 ]; then PY=${PYTHON:-.venv/bin/python}
else PY=${PYTHON:-python3}; fi
mkdir -p "$WORKDIR" "$(dirname "$OUT_FILE")"
LOGS=$(dirname "$OUT_FILE")
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 P2R_HUB=0 P2R_CACHE="$WORKDIR/cache"

# --- environment: missing packages from carried wheels, p2r from this checkout -------------
if ! "$PY" -c "import av, trl, datasets" 2>/dev/null && [ -d "$WHEELS" ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$WORKDIR/site" "$WHEELS"/*.whl
  export PYTHONPATH="$WORKDIR/site${PYTHONPATH:+:$PYTHONPATH}"
fi
if ! "$PY" -c "import p2r_eval, p2r_train" 2>/dev/null; then
  mkdir -p "$WORKDIR/src"
  for pair in p2r_eval:p2r_eval p2r_train:training p2r_tasks:tasks \
              p2r_leaderboards:leaderboards p2r_lmms_tasks:lmms_tasks; do
    ln -sfn "$REPO/${pair#*:}" "$WORKDIR/src/${pair%%:*}"
  done
  export PYTHONPATH="$WORKDIR/src${PYTHONPATH:+:$PYTHONPATH}"
fi

if [ "$DRY_RUN" = 1 ]; then
  DEVICE=cpu; PRESET=(--preset demo); GRPO_PRESET=(--preset demo)
  VISION_ARGS=(--narrow --videos 1 --frames 4 --repeats 1)
  HF_ARGS=(--items 2 --batch-size 2 --decode-workers 1 --frames 4 --max-new-tokens 2
           --clip-seconds 2)
  GRPO_ARGS=(--steps 1 --repeats 1 --batch 2 --generations 2 --completion-length 4 --frames 2)
  SERVE_ITEMS=2; SERVE_SECONDS=2; CONCURRENCY=2; SERVE_FRAMES=4; SERVE_TOKENS=2
  DECODE_WORKERS=1
else
  DEVICE=cuda; PRESET=(--preset 7b); GRPO_PRESET=(--preset 7b --layers "$GRPO_LAYERS")
  VISION_ARGS=(--videos 8 --frames 32 --repeats 3)
  HF_ARGS=(--items 16 --batch-size 8 --decode-workers 4 --frames 32 --max-new-tokens 64)
  GRPO_ARGS=(--steps 5 --repeats 2 --batch 4 --generations 4 --completion-length 64
             --frames 8 --max-pixels 100352 --threads 4)
  SERVE_ITEMS=32; SERVE_SECONDS=10; CONCURRENCY=16; SERVE_FRAMES=32; SERVE_TOKENS=64
  DECODE_WORKERS=4
fi

preflight() {  # every import the checks need, the versions in use, and the device
  "$PY" - "$DEVICE" <<'PYTHON' 2>&1 | tee "$LOGS/gpu_check_environment.txt"
import sys
from importlib import metadata

import av, datasets, fastapi, openai, torch, transformers, trl, uvicorn  # noqa: E401, F401
import p2r_eval.cli.main, p2r_eval.models.hf, p2r_train.cli, p2r_train.rl.pa_grpo  # noqa: E401, F401

names = ["torch", "transformers", "accelerate", "trl", "datasets", "av", "fastapi", "openai"]
print("; ".join(f"{name} {metadata.version(name)}" for name in names))
if sys.argv[1] == "cuda":
    assert torch.cuda.is_available(), "torch sees no GPU"
    print(torch.cuda.get_device_name(), f"{torch.cuda.mem_get_info()[1] / 2**30:.0f} GiB")
PYTHON
  [ "${PIPESTATUS[0]}" = 0 ] || { echo "gpu_check.sh: the environment is not ready (above)" >&2; exit 1; }
}

STATUS="$LOGS/gpu_check_status.txt"
: > "$STATUS"
status() { printf '%s\t%s\n' "$1" "$2" >> "$STATUS"; }  # check, ok | failed | skipped: why

checkpoint() {  # folder, random_checkpoint.py arguments...
  local folder=$1; shift
  [ -f "$folder/config.json" ] && return 0
  rm -rf "$folder"
  "$PY" perf/random_checkpoint.py "$@" --device "$DEVICE" --output "$folder"
}

check_vision() {
  if "$PY" perf/bench_vision_windows.py --device "$DEVICE" "${VISION_ARGS[@]}" \
       --json "$LOGS/gpu_check_vision.json"; then
    status vision ok
  else
    status vision failed
  fi
}

check_hf() {
  if checkpoint "$WORKDIR/model" "${PRESET[@]}" \
     && "$PY" perf/bench_hf_batching.py --model "$WORKDIR/model" --device "$DEVICE" \
          "${HF_ARGS[@]}" --workdir "$WORKDIR/clips" --json "$LOGS/gpu_check_hf.json"; then
    status hf ok
  else
    status hf failed
  fi
}

check_grpo() {
  if checkpoint "$WORKDIR/model-grpo" "${GRPO_PRESET[@]}" \
     && "$PY" perf/bench_pa_grpo.py --model "$WORKDIR/model-grpo" --device "$DEVICE" \
          "${GRPO_ARGS[@]}" --json "$LOGS/gpu_check_grpo.json"; then
    status grpo ok
  else
    status grpo failed
  fi
}

serve_missing() {  # why the served check cannot run in this tree, or nothing
  "$PY" -m p2r_eval.cli serve --help > /dev/null 2>&1 \
    || { echo "this tree has no 'p2r-eval serve'"; return; }
  "$PY" -m p2r_eval.cli --help 2>/dev/null | grep -q -- "--base-url" \
    || { echo "this tree has no 'p2r-eval --backend openai'"; return; }
  "$PY" -c "import fastapi, uvicorn, openai" 2>/dev/null \
    || echo "FastAPI, uvicorn or openai is not installed (the serve extra)"
}

eval_items_per_s() {  # run folder: items / the eval loop's wall time, from results.json
  "$PY" -c 'import json, sys
task = json.load(open(sys.argv[1] + "/results.json"))["tasks"]["mvbench"]
assert task["n_errors"] == 0 and task["complete"], task
print(task["n"] / task["wall_time_s"])' "$1"
}

write_serve_data() {  # folder, items, seconds: a Video-R1-format root of MVBench questions
  "$PY" -c 'import json, sys
from pathlib import Path
from p2r_eval.media.synthetic_media import write_video
root, items, seconds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
root.mkdir(parents=True, exist_ok=True)
records = []
for index in range(items):
    write_video(root / f"clip{index}.mp4", seconds=seconds, fps=30, width=640, height=360,
                gop=250, seed=index)
    records.append({"problem_id": index + 1, "problem": "What moves across the frame?",
                    "data_type": "video", "options": ["A. A square", "B. Nothing"],
                    "problem_type": "multiple choice", "solution": "<answer>A</answer>",
                    "path": f"./clip{index}.mp4"})
(root / "eval_mvbench.json").write_text(json.dumps(records))' "$1" "$2" "$3"
}

wait_for_server() {  # URL, server PID: until it answers, exits, or 300 s have passed
  "$PY" -c 'import os, sys, time, urllib.request
url, pid = sys.argv[1], int(sys.argv[2])
for _ in range(300):
    try:
        urllib.request.urlopen(url, timeout=2)
        sys.exit(0)
    except OSError:
        time.sleep(1)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("the server exited before it answered (its output is above)")
sys.exit("the server did not answer within 300 s")' "$1" "$2"
}

check_serve() {
  local why port server root="$WORKDIR/serve-data" common
  why=$(serve_missing)
  if [ -n "$why" ]; then status serve "skipped: $why"; return; fi
  checkpoint "$WORKDIR/model" "${PRESET[@]}" || { status serve failed; return; }
  port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$PY" -m p2r_eval.cli serve --model "$WORKDIR/model" --served-model-name bench \
    --device "$DEVICE" --port "$port" --max-batch-size "$CONCURRENCY" &
  server=$!  # it loads the model while the clips are written
  write_serve_data "$root" "$SERVE_ITEMS" "$SERVE_SECONDS" \
    || { status serve failed; kill "$server"; wait "$server" 2>/dev/null; return; }
  common=(--tasks mvbench --data-root "$root" --frames "$SERVE_FRAMES" --max-new-tokens
          "$SERVE_TOKENS" --decode-workers "$DECODE_WORKERS" --quiet)
  rm -rf "$WORKDIR/served" "$WORKDIR/in-process"
  if wait_for_server "http://127.0.0.1:$port/v1/models" "$server" \
     && "$PY" -m p2r_eval.cli --backend openai --model bench --base-url \
       "http://127.0.0.1:$port/v1" --concurrency "$CONCURRENCY" --response-cache none \
       "${common[@]}" --output "$WORKDIR/served" \
     && "$PY" -m p2r_eval.cli --model "$WORKDIR/model" --device "$DEVICE" --batch-size \
       "$CONCURRENCY" "${common[@]}" --output "$WORKDIR/in-process"; then
    printf '{"served": %s, "in_process": %s, "items": %s, "concurrency": %s, "frames": %s, "max_new_tokens": %s}\n' \
      "$(eval_items_per_s "$WORKDIR/served")" "$(eval_items_per_s "$WORKDIR/in-process")" \
      "$SERVE_ITEMS" "$CONCURRENCY" "$SERVE_FRAMES" "$SERVE_TOKENS" \
      > "$LOGS/gpu_check_serve.json"
    status serve ok
  else
    status serve failed
  fi
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
}

# The markdown table of the checks that ran so far, with the figures from their JSON files.
write_table() {
"$PY" - "$STATUS" "$LOGS" "$OUT_FILE" "$DRY_RUN" <<'PYTHON'
import json
import sys
from pathlib import Path

status_file, logs, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
dry_run = sys.argv[4] == "1"
GOALS = {"vision": "same outputs; information", "hf": ">= 4x items/s",
         "grpo": "<= 1.03x step time", "serve": "information"}


def pct(value):
    return "n/a" if value is None else f"{value:.0%}"


def gib(value):
    return "n/a" if value is None else f"{value:.1f} GiB"


def vision(s):
    setting = (f"Qwen2.5-VL-7B's vision tower{' (64 wide)' if s['narrow'] else ''}, random "
               f"weights, {s['dtype'].removeprefix('torch.')}, SDPA; {s['videos']} videos x "
               f"{s['frames']} frames of 336x588 in one forward, median of {s['repeats']}")
    times = s["median_s"]
    result = (f"grouped windows {times['grouped']:.3f} s vs transformers' per-window loop "
              f"{times['transformers']:.3f} s = **{s['ratio']:.3f}x**; outputs bit for bit the "
              f"same: {s['identical']}")
    return setting, result, None


def hf(s):
    setting = (f"{s['model']}; {s['dtype'].removeprefix('torch.')}, {s['attention']}; "
               f"{s['items']} items, {s['frames']} frames, {s['max_new_tokens']} new tokens; "
               f"batched: batch {s['batch_size']}, {s['decode_workers']} decode workers")
    rates, busy = s["items_per_s"], s["gpu_busy"]
    result = (f"{rates['p2r']:.3f} vs {rates['one at a time']:.3f} items/s = "
              f"**{s['speed_up']:.2f}x**; GPU busy {pct(busy['p2r'])} batched, "
              f"{pct(busy['one at a time'])} one at a time; peak {gib(s['peak_gib']['p2r'])}")
    return setting, result, s["speed_up"] >= s["goal"]


def grpo(s):
    grpo_name, pa_name = s["median_step_s"]
    setting = (f"{Path(s['model']).name}, batch {s['batch']} x {s['generations']} generations, "
               f"{s['completion_length']} new tokens, {s['frames']} frames, {s['steps']} "
               f"paired steps")
    steps, peaks, ratio = s["median_step_s"], s["peak_gib"], s["paired_ratio"]["wall"]
    result = (f"step {steps[pa_name]:.2f} s vs {steps[grpo_name]:.2f} s = **{ratio:.3f}x**; "
              f"peak {gib(peaks[pa_name])} vs {gib(peaks[grpo_name])} (PA-GRPO vs GRPO, "
              f"both trainers resident)")
    return setting, result, ratio <= s["goal"]


def serve(s):
    setting = (f"p2r-eval serve + --backend openai, concurrency {s['concurrency']}, against "
               f"in-process --batch-size {s['concurrency']}; {s['items']} items, "
               f"{s['frames']} frames, {s['max_new_tokens']} new tokens")
    ratio = s["served"] / s["in_process"]
    result = (f"{s['served']:.3f} vs {s['in_process']:.3f} items/s = **{ratio:.2f}x** "
              f"in-process's")
    return setting, result, None


lines = ["| check | setting | result | goal | verdict |", "|---|---|---|---|---|"]
for line in status_file.read_text().splitlines():
    name, state = line.split("\t")
    if state == "ok":
        figures = json.loads((logs / f"gpu_check_{name}.json").read_text())
        setting, result, met = {"vision": vision, "hf": hf, "grpo": grpo,
                                "serve": serve}[name](figures)
        verdict = "-" if met is None else "met" if met else "NOT met"
    else:
        setting, result, verdict = f"see gpu_check_{name}.log", state, state.split(":")[0]
    if dry_run:
        verdict = f"dry run: {verdict}"
    lines.append(f"| {name} | {setting} | {result} | {GOALS[name]} | {verdict} |")
title = ("GPU checks: dry run on the CPU with the tiny config (its figures mean nothing)"
         if dry_run else "GPU checks")
out.write_text(f"## {title}\n\n" + "\n".join(lines) + "\n")
PYTHON
}

preflight  # a missing package or GPU stops here, in seconds, not inside a check
for check in ${ONLY//,/ }; do
  case $check in
    vision|hf|grpo|serve)
      echo "== $check (log: $LOGS/gpu_check_$check.log) $(date +%T)" >&2
      "check_$check" > "$LOGS/gpu_check_$check.log" 2>&1 || status "$check" failed
      write_table ;;  # after each check, so a run stopped at its time limit keeps the rows
    *) echo "gpu_check.sh: unknown check $check (vision, hf, grpo, serve)" >&2; exit 2 ;;
  esac
done
cat "$OUT_FILE"
