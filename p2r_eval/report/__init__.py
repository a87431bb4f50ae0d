"""What a finished run turns into: leaderboard tables and figures, process analysis, and
the static site of ``p2r-eval view``."""
