"""SlowFast video recognition on PaddlePaddle, compatible with PaddleVideo configs and weights."""
__version__ = "0.1.0"
