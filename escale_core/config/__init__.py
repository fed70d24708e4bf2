"""The TOML configuration: where it is found, every key, validation with one-line errors."""

from .loader import find_config_file, load_config, parse_config, user_config_path
from .model import Config, GlobalConfig, SectionConfig, to_toml
from .schema import GLOBAL_OPTIONS, SECTION_OPTIONS, Option, normalize_key

__all__ = [
    "GLOBAL_OPTIONS",
    "SECTION_OPTIONS",
    "Config",
    "GlobalConfig",
    "Option",
    "SectionConfig",
    "find_config_file",
    "load_config",
    "normalize_key",
    "parse_config",
    "to_toml",
    "user_config_path",
]
