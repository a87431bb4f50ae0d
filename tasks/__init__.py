"""The benchmarks' task specs (one YAML per benchmark), installed as package data ``p2r_tasks``."""
