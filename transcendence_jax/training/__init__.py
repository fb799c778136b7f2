"""Training: the device mesh and sharding rules, the jitted train step and loop, orbax checkpoints,
and what a user sees of a run (metrics.jsonl, TensorBoard, loss.png)."""
