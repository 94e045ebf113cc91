from .recognizers import Recognizer3D

__all__ = ["Recognizer3D"]
