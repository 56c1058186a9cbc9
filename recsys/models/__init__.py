"""Models behind one interface (:class:`~recsys.models.base.Recommender`)."""

from recsys.models.altmin import AltMin
from recsys.models.base import NotFittedError, Recommender
from recsys.models.ease import EASE
from recsys.models.implicit_mf import ALS, BPR
from recsys.models.knn import ItemKNN
from recsys.models.nbmf import NBMF
from recsys.models.nmf import MaskedNMF
from recsys.models.popularity import MostPopular
from recsys.models.registry import make_model, model_class
from recsys.models.simplex import SimpleX

__all__ = [
    "ALS", "AltMin", "BPR", "EASE", "ItemKNN", "MaskedNMF", "MostPopular", "NBMF", "NotFittedError",
    "Recommender", "SimpleX", "make_model", "model_class",
]
