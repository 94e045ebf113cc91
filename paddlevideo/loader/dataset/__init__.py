"""Datasets (registered in ``DATASETS``) and bad-video bookkeeping."""
from .bad_videos import BadVideoError, BadVideoLog, check_bad_video_fraction
from .list_file import ListFileError, read_video_list
from .sf_video import SampleInfo, SFVideoDataset

__all__ = ["SFVideoDataset", "SampleInfo", "BadVideoError", "BadVideoLog",
           "check_bad_video_fraction", "ListFileError", "read_video_list"]
