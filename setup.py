"""Build recsys: the Python package plus the Cython kernels in ext/ (compiled into recsys._ext).

OpenMP is used where the compiler supports it (-fopenmp on compile *and* link); otherwise the
kernels build single-threaded and a warning says so. No -march=native: wheels must run on any
x86-64 (set RECSYS_MARCH_NATIVE=1 to opt in for a local build).
"""

import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import warnings
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

HERE = Path(__file__).parent


def openmp_flags() -> tuple[list[str], list[str]]:
    """Compile/link flags for OpenMP, or empty lists when the compiler cannot build with it."""
    if os.environ.get("RECSYS_DISABLE_OPENMP") == "1":
        return [], []
    if sys.platform == "win32":
        return ["/openmp"], []
    if sys.platform == "darwin":
        flags = (["-Xpreprocessor", "-fopenmp"], ["-lomp"])
    else:
        flags = (["-fopenmp"], ["-fopenmp"])
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    compiler = cc.split()[0]
    if shutil.which(compiler) is None:
        return flags  # let setuptools report the missing compiler itself
    src = "#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n"
    with tempfile.TemporaryDirectory() as tmp:
        c_file = Path(tmp) / "check_openmp.c"
        c_file.write_text(src)
        cmd = [*cc.split(), *flags[0], str(c_file), "-o", str(Path(tmp) / "a.out"), *flags[1]]
        ok = subprocess.run(cmd, capture_output=True).returncode == 0
    if not ok:
        warnings.warn(
            "recsys: the C compiler cannot build OpenMP code; kernels will run single-threaded. "
            "Install an OpenMP runtime (libgomp / libomp) and rebuild for parallel kernels.",
            stacklevel=1,
        )
        return [], []
    return flags


omp_compile, omp_link = openmp_flags()
# -fno-math-errno: sqrt/exp never set errno, so loops calling them can vectorise
compile_args = ["/O2"] if sys.platform == "win32" else ["-O3", "-fno-math-errno"]
if os.environ.get("RECSYS_MARCH_NATIVE") == "1":
    compile_args.append("-march=native")

# ``<kernel>_avx2.pyx`` includes ``<kernel>.pyx`` to build it again with AVX2 and FMA, chosen
# at run time by recsys._ext.kernel on CPUs that have them; skipped where the compiler does
# not target x86-64 (or is MSVC), where the baseline build then serves alone.
x86_gcc = sys.platform != "win32" and platform.machine().lower() in ("x86_64", "amd64")
extensions = [
    Extension(
        f"recsys._ext.{path.stem}",
        [str(path.relative_to(HERE))],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args + omp_compile
        + (["-mavx2", "-mfma"] if path.stem.endswith("_avx2") else []),
        extra_link_args=omp_link,
    )
    for path in sorted((HERE / "ext").glob("*.pyx"))
    if x86_gcc or not path.stem.endswith("_avx2")
]

setup(
    name="recsys",
    version="0.1.0",
    description="Collaborative-filtering recommenders with Cython/OpenMP kernels",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["recsys", "recsys.*"]),
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
        },
    ),
    install_requires=[
        "numpy>=1.23",
        "scipy>=1.9",
        "pandas>=1.5",
        "implicit>=0.7.2",
        "threadpoolctl>=3.1",
        "tqdm>=4.60",
        "tomli>=2; python_version < '3.11'",
    ],
    extras_require={
        "parquet": ["pyarrow>=12"],
        # sweeps: Optuna studies logged to MLflow, with plots
        "tune": ["optuna>=4.2", "mlflow>=3", "matplotlib>=3.7"],
        # sharded batch scoring and many-machine sweeps
        "scale": ["dask[distributed]>=2024.1", "pyarrow>=12", "psycopg2-binary>=2.9"],
        # the documentation site (Sphinx: numpydoc docstrings, argparse CLI reference)
        "docs": ["sphinx>=7", "numpydoc>=1.6", "sphinx-argparse>=0.4", "furo>=2024.1",
                 "matplotlib>=3.7"],
        "test": ["pytest>=7", "hypothesis>=6.80", "pyarrow>=12", "ruff>=0.5",
                 "optuna>=4.2", "mlflow>=3", "matplotlib>=3.7", "dask[distributed]>=2024.1",
                 "psycopg2-binary>=2.9", "nbmake>=1.5", "ipykernel>=6", "nbformat>=5",
                 "sphinx>=7", "numpydoc>=1.6", "sphinx-argparse>=0.4", "furo>=2024.1"],
    },
    entry_points={"console_scripts": ["recsys = recsys.cli:main"]},
    zip_safe=False,
)
