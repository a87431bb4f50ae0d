"""``python -m p2r_eval.cli``: the ``p2r-eval`` command."""

import sys

from p2r_eval.cli.main import entry_point

sys.exit(entry_point())
