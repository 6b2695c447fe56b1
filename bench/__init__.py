"""compression-bench: compressors, the messages they produce, and the generalization bounds those buy."""

__version__ = "0.1.0"
