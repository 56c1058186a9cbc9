"""What a fitted model holds, declared once per class and checked when a model file is read.

A model file is untrusted input: :meth:`Recommender.load` sets only the attributes the class
declares in ``_fitted``, each with its declared kind and a shape that agrees with the metadata
(``n_users_``, ``n_items_``) and with the other arrays (a symbol such as ``"k"`` must take one
value across all of them), so that a crafted file can neither overwrite a method nor make a
model recommend ids beyond its catalogue.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from recsys._validation import check_structure


@dataclass(frozen=True)
class Array:
    """An ndarray (or, with ``sparse``, a CSR matrix) of a dtype kind in ``kind`` ("f":
    floating, "u": unsigned, "i": signed integer, "U": string) and a shape of int literals
    and symbols; floating values must be finite. ``sparse``: False (dense only), True (CSR
    only) or None (either)."""

    kind: str
    shape: tuple
    sparse: bool | None = False
    optional: bool = False


@dataclass(frozen=True)
class Scalar:
    """A JSON value of the given type (``int`` also accepts bool-free integers)."""

    type: type
    optional: bool = False


#: Every model records the shape it was fitted on and, when fitted on an ``Interactions``, its
#: raw ids, the training users of each item and a description of the training data
#: (:mod:`recsys.models.ids`).
COMMON = {"n_users_": Scalar(int), "n_items_": Scalar(int),
          "user_ids_": Array("iuU", ("n_users_",), optional=True),
          "item_ids_": Array("iuU", ("n_items_",), optional=True),
          "item_counts_": Array("f", ("n_items_",), optional=True),
          "training_data_": Scalar(dict, optional=True)}


def check_fitted(owner: str, schema: dict[str, Array | Scalar], scalars: dict[str, Any],
                 arrays: dict[str, Any]) -> dict[str, Any]:
    """The validated attributes (``scalars`` from JSON, ``arrays`` dense or CSR) of a
    ``owner`` model, or a ``ValueError`` naming the first problem."""
    schema = {**COMMON, **schema}
    found = {**scalars, **arrays}
    unknown = sorted(set(found) - set(schema))
    if unknown:
        raise ValueError(f"{owner} has no fitted attribute {', '.join(unknown)}")
    missing = sorted(name for name, spec in schema.items()
                     if name not in found and not spec.optional)
    if missing:
        raise ValueError(f"the file lacks {owner}'s fitted {', '.join(missing)}")
    sizes: dict[str, int] = {}
    for name in ("n_users_", "n_items_"):
        value = scalars.get(name)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"{name} must be a nonnegative int, got {value!r}")
        sizes[name] = int(value)
    for name, value in found.items():
        spec = schema[name]
        if isinstance(spec, Scalar):
            ok = isinstance(value, spec.type) and not (spec.type is int
                                                       and isinstance(value, bool))
            if spec.type is float:
                ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and \
                    np.isfinite(value)
            if not ok:
                raise ValueError(f"{owner}.{name} must be a {spec.type.__name__}, got "
                                 f"{type(value).__name__}")
            continue
        if name in scalars:
            raise ValueError(f"{owner}.{name} must be an array")
        _check_array(owner, name, spec, value, sizes)
    return found


def _check_array(owner: str, name: str, spec: Array, value, sizes: dict[str, int]) -> None:
    where = f"{owner}.{name}"
    if sp.issparse(value):
        if spec.sparse is False:
            raise ValueError(f"{where} must be a dense array")
        check_structure(value, where)
        data = value.data
    else:
        if spec.sparse is True or not isinstance(value, np.ndarray):
            raise ValueError(f"{where} must be a sparse CSR matrix")
        data = value
    if data.dtype.kind not in spec.kind:
        raise ValueError(f"{where} has dtype {data.dtype}, expected kind {spec.kind!r}")
    if spec.kind == "f" and not np.isfinite(data).all():
        raise ValueError(f"{where} holds NaN or infinite values")
    if len(value.shape) != len(spec.shape):
        raise ValueError(f"{where} has shape {value.shape}, expected {len(spec.shape)} axes")
    for axis, (size, want) in enumerate(zip(value.shape, spec.shape)):
        if isinstance(want, str):
            want = sizes.setdefault(want, int(size))
        if size != want:
            raise ValueError(f"{where} has shape {value.shape}: axis {axis} should be {want} "
                             "(from the metadata and the other arrays)")


__all__ = ["COMMON", "Array", "Scalar", "check_fitted"]
