"""OpenMP facts about this build (compiled with or without -fopenmp)."""

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int recsys_openmp_enabled(void) { return 1; }
    static int recsys_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int recsys_openmp_enabled(void) { return 0; }
    static int recsys_max_threads(void) { return 1; }
    #endif
    """
    int recsys_openmp_enabled()
    int recsys_max_threads()


def openmp_enabled() -> bool:
    """True when the kernels were compiled with OpenMP."""
    return bool(recsys_openmp_enabled())


def max_threads() -> int:
    """``omp_get_max_threads()`` (honours OMP_NUM_THREADS); 1 without OpenMP."""
    return recsys_max_threads()
