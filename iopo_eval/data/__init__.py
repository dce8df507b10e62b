"""Where benchmark data enters: a registry of pinned upstream files, a verified cache, and row loaders."""

from iopo_eval.data.registry import REGISTRY, DataFile, get_file
from iopo_eval.data.store import DataError, data_path, fetch, verify

__all__ = ["REGISTRY", "DataError", "DataFile", "data_path", "fetch", "get_file", "verify"]
