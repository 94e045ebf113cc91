"""Logging to the console and ``output_dir/train.log`` (rank 0 only writes the file)."""
from __future__ import annotations

import logging
import os
import sys
from typing import Optional

LOGGER_NAME = "paddlevideo"


def get_logger(name: str = LOGGER_NAME) -> logging.Logger:
    return logging.getLogger(name)


def setup_logger(output_dir: Optional[str] = None, rank: int = 0, level: str = "INFO",
                 filename: str = "train.log") -> logging.Logger:
    """Console handler on every process (non-zero ranks only warn), file handler on rank 0."""
    logger = get_logger()
    logger.setLevel(level if rank == 0 else "WARNING")
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    fmt = logging.Formatter("[%(asctime)s] %(levelname)s: %(message)s", datefmt="%Y-%m-%d %H:%M:%S")
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(fmt)
    logger.addHandler(console)
    if output_dir and rank == 0:
        os.makedirs(output_dir, exist_ok=True)
        file_handler = logging.FileHandler(os.path.join(output_dir, filename), encoding="utf-8")
        file_handler.setFormatter(fmt)
        logger.addHandler(file_handler)
    return logger
