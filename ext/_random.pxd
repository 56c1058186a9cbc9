# Counter-based random numbers for the kernels in ext/ (splitmix64, Steele et al. 2014): a
# stream is one uint64 state seeded from (seed, row), so results never depend on the thread
# that processes the row.
from libc.stdint cimport uint64_t


cdef inline uint64_t mix(uint64_t z) noexcept nogil:
    """splitmix64 finaliser: a seeded 64-bit hash."""
    z = (z ^ (z >> 30)) * <uint64_t>0xbf58476d1ce4e5b9
    z = (z ^ (z >> 27)) * <uint64_t>0x94d049bb133111eb
    return z ^ (z >> 31)


cdef inline uint64_t next_u64(uint64_t* state) noexcept nogil:
    """Next value of the splitmix64 stream ``state``."""
    state[0] += <uint64_t>0x9e3779b97f4a7c15
    return mix(state[0])


cdef inline double next_uniform(uint64_t* state) noexcept nogil:
    """Uniform double in [0, 1) with 53 random bits."""
    return <double>(next_u64(state) >> 11) * (1.0 / 9007199254740992.0)
