"""Process-aware CoT data (``p2r-train annotate``): teacher generation, metric verification
and the observation-sufficiency check, resumable and reported."""
