"""Throughput and latency benchmarks of the serving stack against in-process limits and the stock handler."""
