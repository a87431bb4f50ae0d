"""The rules every stage shares, with no model and no media: items, answer types, prompts,
the output parser, item scoring, statistics, and small file and text utilities."""
