"""The benchmarks: task definitions (``tasks/<name>.yaml``), their source formats, official
and Video-R1 scoring protocols, data checks, and the built-in demo and toy suites."""
