"""Benchmarks: `make bench`. Each figure is a ratio against a reference measured
in the same run, because the machines they run on are shared and noisy."""
