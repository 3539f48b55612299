"""Build the native kernels: every ``src/pipecore/_native/*.pyx`` becomes one extension.

All metadata lives in pyproject.toml; this file only cythonizes.
"""
import glob
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
    "nonecheck": False,
}


def _extensions():
    exts = []
    for path in sorted(glob.glob(os.path.join("src", "pipecore", "_native", "*.pyx"))):
        name = os.path.splitext(os.path.basename(path))[0]
        exts.append(
            Extension(
                f"pipecore._native.{name}",
                [path],
                extra_compile_args=["-O3"],
            )
        )
    return cythonize(exts, compiler_directives=_DIRECTIVES, nthreads=os.cpu_count() or 1)


setup(ext_modules=_extensions())
