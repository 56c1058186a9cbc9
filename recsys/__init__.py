"""recsys: collaborative-filtering recommenders with Cython/OpenMP kernels.

Data flows one way: interactions -> :class:`recsys.data.Interactions` (CSR users x items plus id
maps) -> model ``fit`` -> scores -> shared top-k (:mod:`recsys.topk`) -> metrics or output files.
"""

import logging

from recsys._ext._openmp import openmp_enabled

__version__ = "0.1.0"
__all__ = ["openmp_enabled", "__version__"]

logging.getLogger(__name__).addHandler(logging.NullHandler())
