#!/usr/bin/env bash
# Remake the committed demo model (p2r_eval/models/demo_checkpoint): the SFT checkpoint of the
# toy recipe. Runs the whole recipe (make toy) into RUN (default runs/toy), then copies the
# SFT model and processor files, and records how they were made in p2r_demo.json.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN="${1:-runs/toy}"
.venv/bin/p2r-train recipe toy --output "$RUN"
DEST=p2r_eval/models/demo_checkpoint
rm -rf "$DEST"
mkdir -p "$DEST"
for file in config.json generation_config.json model.safetensors processor_config.json \
    tokenizer.json tokenizer_config.json chat_template.jinja; do
  cp "$RUN/sft/$file" "$DEST/"
done
.venv/bin/python - "$RUN" "$DEST" <<'PY'
import json, sys
from pathlib import Path

from p2r_eval.core.cache_root import cache_root

run, dest = Path(sys.argv[1]), Path(sys.argv[2])
recipe = json.loads((run / "recipe.json").read_text())
command = recipe["steps"]["sft"]["commands"][0].split(" -m ", 1)[1]
command = command.replace(str(run.resolve()), "RUN").replace(str(cache_root()), "$P2R_CACHE")
settings = {key: value for key, value in recipe["settings"].items() if key != "output"}
marker = {
    "made_by": "bash scripts/make_demo_checkpoint.sh RUN (p2r-train recipe toy; its sft step)",
    "sft_command": command,
    "recipe_settings": settings,
}
(dest / "p2r_demo.json").write_text(json.dumps(marker, indent=1) + "\n")
PY
echo "demo checkpoint written to $DEST"
