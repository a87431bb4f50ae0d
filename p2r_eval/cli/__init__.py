"""The ``p2r-eval`` command line: argument parsing and the subcommands' entry points."""
