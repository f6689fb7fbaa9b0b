"""Shared parts of bench/bench.py: the daemons, the pairing, the row catalog."""
