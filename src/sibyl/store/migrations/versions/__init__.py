"""Migration revisions, oldest first (``rev_<nnnn>_<what>.py``)."""
