"""PPO pretraining of the tracking policy (rsl-rl glue), checkpoints, ONNX export with the deploy contract, play."""
