"""Config, registry, checkpoints, logging and distributed helpers."""
from .config import AttrDict, ConfigError, dump_config, get_config, override_config
from .registry import Registry, build_from_config

__all__ = ["AttrDict", "ConfigError", "Registry", "build_from_config", "dump_config",
           "get_config", "override_config"]
