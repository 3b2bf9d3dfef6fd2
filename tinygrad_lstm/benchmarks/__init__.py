"""Benchmarks that compare the engine with PyTorch; run them with `tinygrad-lstm bench` or benchmarks/*.py."""
