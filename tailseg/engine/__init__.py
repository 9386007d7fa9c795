"""Training: optimiser, schedule, EMA, checkpoints, distributed helpers, the loop."""
