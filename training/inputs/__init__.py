"""Training inputs: records to examples, video and image preprocessing, and collation."""
