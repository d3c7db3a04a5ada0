"""vidsearch: index long video archives with a CLIP model; ask for ranked time ranges in plain words."""

__version__ = "0.1.0"
