"""lmms-eval task YAMLs for p2r's benchmarks (``--include_path``), installed as
``p2r_lmms_tasks``."""
