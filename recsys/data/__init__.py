"""Data layer: interactions as CSR, id maps, real data sets and splitters."""

from recsys.data.describe import describe, describe_frame
from recsys.data.idmap import IdMap
from recsys.data.interactions import Interactions
from recsys.data.negatives import NEGATIVE_VALUE, with_sampled_negatives
from recsys.data.splits import (
    Split,
    leave_k_out,
    random_holdout,
    strong_generalization,
    temporal_split,
    validation_split,
)

__all__ = [
    "NEGATIVE_VALUE",
    "IdMap",
    "Interactions",
    "Split",
    "describe",
    "describe_frame",
    "leave_k_out",
    "random_holdout",
    "strong_generalization",
    "temporal_split",
    "validation_split",
    "with_sampled_negatives",
]
