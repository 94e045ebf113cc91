"""PyTorch checkpoints (PySlowFast, PyTorchVideo) read without PyTorch and renamed to ours."""
