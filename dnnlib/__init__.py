"""Small utilities shared by every part of the project (configuration dicts, URLs, logging)."""

from . import util
from .util import EasyDict, make_cache_dir_path

__all__ = ["EasyDict", "make_cache_dir_path", "util"]
