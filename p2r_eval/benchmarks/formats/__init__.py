"""Reading benchmark annotations in their real formats.

Two formats per benchmark: Video-R1's evaluation JSON (``eval_<name>.json``) and the
benchmark authors' release (json, jsonl, parquet, a ``datasets`` folder saved to disk, or
the hub). ``tasks/<name>.yaml`` says, for each format, how a record maps to an
:class:`~p2r_eval.core.items.Item`; :mod:`p2r_eval.benchmarks.formats.mapping` applies that mapping
with the shared named transforms of :mod:`p2r_eval.benchmarks.formats.transforms` and those of
the benchmark's own module.
"""
