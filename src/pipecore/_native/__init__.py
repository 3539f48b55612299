"""Compiled kernels (Cython). Private: use the public API in :mod:`pipecore`."""
