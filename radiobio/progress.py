"""Progress bars that suit a terminal, a batch log and Jupyter alike.

Libraries default to ``progress=False`` (as lifelines does); the CLI turns bars on unless ``-q/--quiet``. In Jupyter
the widget bar is used when ipywidgets is installed, else a plain text bar, never a warning.
"""

from __future__ import annotations

import sys
from typing import Any


def progress_bar(total: int, *, enabled: bool, desc: str, unit: str = "case") -> Any:
    """A tqdm bar over ``total`` items counted in ``unit``; a no-op bar when ``enabled`` is False."""
    bar_class = _tqdm_class() if enabled else None
    if bar_class is None:
        from tqdm.std import tqdm

        return tqdm(total=total, disable=True)
    return bar_class(total=total, desc=desc, unit=unit, dynamic_ncols=True)


def _tqdm_class() -> Any:
    if _in_notebook():
        try:
            import ipywidgets  # noqa: F401
            from tqdm.notebook import tqdm

            return tqdm
        except ImportError:
            pass
    from tqdm.std import tqdm

    return tqdm


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ipython = shell.get_ipython()
    except AttributeError:
        return False
    return ipython is not None and type(ipython).__name__ == "ZMQInteractiveShell"
