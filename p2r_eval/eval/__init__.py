"""Running an evaluation: the main command's flow, the evaluation loop, the run store,
shards, the perception probe, and scoring every checkpoint of a training run."""
