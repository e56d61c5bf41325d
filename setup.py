"""Builds the one extension, fastinvoke._core, from the Cython sources in csrc/.

Knobs: FASTINVOKE_DEBUG=1 compiles with -O0 -g and Cython's bounds checks;
FASTINVOKE_ANNOTATE=1 writes Cython's HTML annotation next to the sources.
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

debug = os.environ.get("FASTINVOKE_DEBUG") == "1"
directives = {"boundscheck": True, "wraparound": True} if debug else {}

extension = Extension(
    "fastinvoke._core",
    sources=["csrc/_core.pyx"],
    include_dirs=["csrc"],
    extra_compile_args=["-O0", "-g"] if debug else ["-O2"],
)

setup(
    ext_modules=cythonize(
        [extension],
        include_path=["csrc"],
        compiler_directives=directives,
        annotate=os.environ.get("FASTINVOKE_ANNOTATE") == "1",
    ),
)
