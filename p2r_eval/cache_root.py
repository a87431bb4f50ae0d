"""Where p2r keeps what it builds once and reuses: the demo model, the demo suite, judge replies."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$P2R_CACHE`` if set, else ``~/.cache/p2r``."""
    return Path(os.environ.get("P2R_CACHE") or Path.home() / ".cache" / "p2r").expanduser()
