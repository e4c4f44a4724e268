"""Optional packages: import one, or fail in one line naming the extra that installs it."""

from __future__ import annotations

import importlib
from types import ModuleType

from driving.data.format import DatasetError


def require(module: str, extra: str = "export") -> ModuleType:
    """Import `module`, or raise DatasetError saying which extra of this package brings it.

    Raises:
        DatasetError: `module` is not installed (its message names the pip command).
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DatasetError(
            f"{module.split('.')[0]} is not installed: pip install 'pixels-to-pedals[{extra}]'"
        ) from None
