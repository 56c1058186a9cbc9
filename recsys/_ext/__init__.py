"""Compiled kernels. A kernel built twice (baseline x86-64 and ``<name>_avx2``, compiled with
``-mavx2 -mfma``) is chosen at run time by :func:`kernel`, so one build runs on any x86-64 CPU
and uses the wider instructions where the CPU has them."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from recsys._ext._cpu import avx2_fma

SIMD = "RECSYS_SIMD"  # "baseline" forces the baseline builds (tests compare the two)


def kernel(name: str) -> ModuleType:
    """The build of kernel ``name`` (e.g. ``"_simplex"``) for this CPU: ``<name>_avx2`` when
    it was compiled, the CPU has AVX2 and FMA and ``$RECSYS_SIMD`` is not ``baseline``;
    otherwise the baseline build."""
    if os.environ.get(SIMD, "").lower() != "baseline" and avx2_fma():
        try:
            return importlib.import_module(f"recsys._ext.{name}_avx2")
        except ImportError:  # not built here (another architecture or compiler)
            pass
    return importlib.import_module(f"recsys._ext.{name}")
