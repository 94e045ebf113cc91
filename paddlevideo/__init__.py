"""SlowFast video recognition on PaddlePaddle, compatible with PaddleVideo configs and weights."""
__version__ = "0.1.0"

# Importing the domain packages registers every model part, dataset, pipeline step, metric,
# optimizer and LR schedule, so a config is checked against all of them whichever entry point
# loads it first.
from . import loader, metrics, modeling, solver  # noqa: E402,F401
