"""Running an evaluation: the evaluation loop, batched generation (shared with p2r-train's
annotation), the results contract and the run store, shards, the perception probe, and
scoring every checkpoint of a training run. The ``p2r-eval`` command that drives them is
:mod:`p2r_eval.cli.evaluate`."""
