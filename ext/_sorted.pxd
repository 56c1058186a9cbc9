# Binary search in a sorted int32 run (a CSR row), shared by the kernels in ext/.

cdef inline Py_ssize_t lower_bound(const int* row, Py_ssize_t n, int value) noexcept nogil:
    """First position in row[0:n] whose value is >= ``value`` (n when none)."""
    cdef Py_ssize_t lo = 0, hi = n, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if row[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef inline Py_ssize_t find(const int* row, Py_ssize_t n, int value) noexcept nogil:
    """Position of ``value`` in row[0:n], or -1."""
    cdef Py_ssize_t pos = lower_bound(row, n, value)
    return pos if pos < n and row[pos] == value else -1
