"""Running an evaluation: the main command's flow, the evaluation loop, batched generation
(shared with p2r-train's annotation), the run store, shards, the perception probe, and
scoring every checkpoint of a training run."""
