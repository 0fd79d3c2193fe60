"""Native parts of abvoc; everything else is declared in setup.cfg.

The connected-component op in csrc/ccl is compiled into workloads.ocr._ccl with the machine's
C++ compiler. It uses only the CPython C API, so the build needs nothing beyond setuptools.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "workloads.ocr._ccl",
            sources=["csrc/ccl/pymodule.cpp"],
            depends=["csrc/ccl/ccl.hpp"],
            include_dirs=["csrc/ccl"],
            language="c++",
            extra_compile_args=["-std=c++17", "-O3", "-pthread"],
            extra_link_args=["-pthread"],
        )
    ]
)
