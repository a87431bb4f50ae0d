"""p2r: evaluate video-language models the way the VideoP2R paper does.

``run_eval`` is the Python API (see :mod:`p2r_eval.api`); ``p2r-eval`` is the command.
Importing the package imports no torch: that happens when a model is loaded.
"""

from p2r_eval.api import EvalRun, TaskResult, run_eval

__all__ = ["EvalRun", "TaskResult", "__version__", "run_eval"]


def _installed_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("p2r")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "0+unknown"


__version__ = _installed_version()
