"""The HTTP service of ``tools/serve.py``: app, job queue, dynamic batching, upload checks."""
from .app import Service, Settings, build_app
from .batching import DynamicBatcher
from .model import load_predictor
