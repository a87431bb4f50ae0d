"""The paper's tables as data (``*.yaml``) and as rendered markdown, installed as
``p2r_leaderboards``."""
