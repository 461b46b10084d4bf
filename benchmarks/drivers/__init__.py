"""Benchmark drivers: each runs in its own process and prints one JSON result line.

Run by ``benchmarks/run.py``; see benchmarks/README.md. ``_common`` uses the standard library
only, so the peer's driver can run in an environment without kernl_trio's dependencies.
"""
