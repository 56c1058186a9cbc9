# The SimpleX kernel compiled a second time with -mavx2 -mfma (setup.py), for CPUs that have
# them: recsys._ext.kernel("_simplex") picks this build or the baseline one at run time.
include "_simplex.pyx"
