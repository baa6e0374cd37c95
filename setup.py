"""Compiled extensions of alphaforge (everything else is in pyproject.toml).

Each extension is our own C code with a pure-Python fallback, built ``optional=True`` so an install without a
compiler still works (the fallback runs; under ``CI=true`` tests/test_ledger_kernel.py fails when a module
is missing, so a broken build never passes silently). The flags keep IEEE double semantics exactly: no FMA
contraction, no fast-math reassociation — the kernels are bit-identical to their Python references.
"""

from setuptools import Extension, setup

IEEE_FLAGS = ["-O2", "-ffp-contract=off", "-fno-fast-math"]

#: (module, C sources): add a kernel by adding a line.
KERNELS = [
    ("alphaforge.backtest._ledger", ["alphaforge/backtest/_ledger.c"]),
    ("alphaforge.validation._permute", ["alphaforge/validation/_permute.c"]),
    ("alphaforge.features._rolling", ["alphaforge/features/_rolling.c"]),
    ("alphaforge.validation._resample", ["alphaforge/validation/_resample.c"]),
    ("alphaforge.backtest._signals", ["alphaforge/backtest/_signals.c"]),
    ("alphaforge.metrics._moments", ["alphaforge/metrics/_moments.c"]),
]

setup(ext_modules=[Extension(name, sources, optional=True, extra_compile_args=IEEE_FLAGS) for name, sources in KERNELS])
