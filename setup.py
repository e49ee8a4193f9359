"""Build of the compiled order-book side and frame reader; everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "microstream.book._cside",
            sources=["src/microstream/book/_cside.c"],
            extra_compile_args=["-O2", "-Wall", "-ffp-contract=off"],
            # without a C compiler the install still succeeds and the pure-Python
            # book is used (with a warning); the test suite fails loudly then
            optional=True,
        ),
        Extension(
            "microstream.venues.binance._cscan",
            sources=["src/microstream/venues/binance/_cscan.c"],
            extra_compile_args=["-O2", "-Wall", "-ffp-contract=off"],
            optional=True,
        ),
    ]
)
