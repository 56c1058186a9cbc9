"""Real public data sets (``recsys.datasets.load``); see :mod:`recsys.data.datasets`."""

from recsys.data.datasets import (
    DATASETS,
    DataSet,
    data_home,
    datasets,
    fetch,
    info,
    item_titles,
    load,
    verify,
)

__all__ = ["DATASETS", "DataSet", "data_home", "datasets", "fetch", "info", "item_titles",
           "load", "verify"]
