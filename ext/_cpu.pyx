"""What the CPU running this process supports, for choosing between a kernel's builds."""

cdef extern from *:
    """
    #if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    static int recsys_avx2_fma(void) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    #else
    static int recsys_avx2_fma(void) { return 0; }
    #endif
    """
    int recsys_avx2_fma()


def avx2_fma() -> bool:
    """True when the CPU (not the build machine) executes AVX2 and FMA instructions."""
    return bool(recsys_avx2_fma())
