# Permutation check shared by the kernels in ext/ (a permutation drives a scatter or a sort).

from libc.stdlib cimport calloc, free


cdef inline int is_permutation(const int* order, Py_ssize_t n) noexcept nogil:
    """1 when ``order[0:n]`` holds each of 0..n-1 once, 0 when not, -1 when the n bytes of
    scratch cannot be allocated."""
    cdef Py_ssize_t p
    cdef int v, ok = 1
    cdef unsigned char* seen = <unsigned char*>calloc(n if n > 0 else 1, 1)
    if seen == NULL:
        return -1
    for p in range(n):
        v = order[p]
        if v < 0 or v >= n or seen[v]:
            ok = 0
            break
        seen[v] = 1
    free(seen)
    return ok
