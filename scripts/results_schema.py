"""Write docs/results-schema.json, the JSON Schema of the results contract, from its models
(p2r_eval.eval.results); a test checks that the published file is the generated one."""

from __future__ import annotations

from pathlib import Path

from p2r_eval.eval.results import json_schema_text

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "docs" / "results-schema.json"

if __name__ == "__main__":
    SCHEMA_PATH.write_text(json_schema_text(), encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")
