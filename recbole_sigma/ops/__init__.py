"""Operators of the Mamba blocks. The selective scan: :mod:`recbole_sigma.ops.selective_scan`
(fused numba kernels, with a pure-PyTorch fallback).

Nothing is re-exported here: ``selective_scan`` is both a module and its main function."""
