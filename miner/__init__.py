"""A SHA-256d Bitcoin miner with pluggable CPU, GPU and ASIC backends."""

__version__ = "0.1.0"
