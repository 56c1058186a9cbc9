"""Real public data sets (``recsys.datasets.load``); see :mod:`recsys.data.datasets`."""

from recsys.data.datasets import DATASETS, data_home, fetch, item_titles, load, verify

__all__ = ["DATASETS", "data_home", "fetch", "item_titles", "load", "verify"]
