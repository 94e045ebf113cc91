"""Export a trained model for deployment and predict actions in videos with it."""
from .engines import (
    EngineChoice,
    EngineError,
    EngineOptions,
    OnnxEngine,
    PaddleEngine,
    choose_engine,
    create_engine,
)
from .export import (
    ExportError,
    InputShapes,
    compare_with_dynamic,
    export_inference_model,
    input_shapes_from_config,
)
from .labels import LabelMapError, read_label_map
from .predictor import Predictor, list_videos, prediction_record
from .preprocess import ClipPreprocessor, predict_pipeline_config
from .timeline import Segment, SegmentBuilder, WindowPlan, WindowResult
from .timeline_runner import TimelineResult, TimelineRun, WindowPreprocessor

__all__ = ["ClipPreprocessor", "EngineChoice", "EngineError", "EngineOptions", "ExportError",
           "InputShapes", "LabelMapError", "OnnxEngine", "PaddleEngine", "Predictor",
           "compare_with_dynamic", "choose_engine", "create_engine", "export_inference_model",
           "input_shapes_from_config", "list_videos", "prediction_record",
           "predict_pipeline_config", "read_label_map", "Segment", "SegmentBuilder",
           "TimelineResult", "TimelineRun", "WindowPlan", "WindowPreprocessor", "WindowResult"]
