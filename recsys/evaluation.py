"""Full-ranking top-k metrics and rating-prediction errors.

Protocol: every test user (a row of ``test_X`` with at least one item) gets a ranking of *all*
items, with the items in their ``train_X`` row excluded. With ``T_u`` the user's test items,
``rel_u(r) = 1`` when the item at rank ``r`` (0-based) is in ``T_u``, and ``hits_u@k`` the number
of such items in the first ``k``:

- ``ndcg_at_k``: ``DCG / IDCG``, ``DCG = sum_{r<k} rel_u(r) / log2(r + 2)``, IDCG the same sum
  over the first ``min(k, |T_u|)`` ranks with every item relevant (binary gains).
- ``recall_at_k``: ``hits_u@k / |T_u|``.
- ``recall_capped_at_k``: ``hits_u@k / min(k, |T_u|)`` (the variant some papers call recall).
- ``precision_at_k``: ``hits_u@k / k``.
- ``map_at_k``: ``(1 / min(k, |T_u|)) sum_{r<k} rel_u(r) * precision@(r + 1)``.
- ``mrr_at_k``: ``1 / (r + 1)`` for the first relevant rank ``r < k``, else 0.
- ``hit_rate_at_k``: 1 if ``hits_u@k > 0`` else 0.
- ``coverage_at_k``: ``|union of all users' top-k lists| / n_items`` (catalogue coverage).

Beyond accuracy (novelty, diversity, exposure and popularity bias): see :mod:`recsys.beyond`.
All but coverage, ``gini`` and ``entropy`` are averaged over test users (macro). ``k`` beyond
the catalogue is allowed: the ranking then holds every candidate and the formulas above keep
their nominal ``k``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from recsys._ext import _metrics
from recsys._threads import blas_limit, resolve_num_threads
from recsys._validation import as_csr, check_users
from recsys.beyond import BEYOND_METRICS, beyond_metrics

logger = logging.getLogger(__name__)

RANKING_METRICS = ("ndcg", "recall", "recall_capped", "precision", "map", "mrr", "hit_rate",
                   "coverage")
#: Every metric ``evaluate`` computes: accuracy, coverage, and the beyond-accuracy metrics of
#: :mod:`recsys.beyond` (novelty, diversity, exposure).
ALL_METRICS = RANKING_METRICS + BEYOND_METRICS
DEFAULT_METRICS = ("ndcg", "recall", "precision", "map", "mrr", "hit_rate", "coverage")


def parse_metric(key: str) -> tuple[str, int]:
    """``"ndcg_at_10"`` -> ``("ndcg", 10)``; anything else is a ``ValueError`` listing the
    metric names."""
    name, sep, at = key.rpartition("_at_") if isinstance(key, str) else ("", "", "")
    if not sep or name not in ALL_METRICS or not at.isdigit() or int(at) < 1:
        raise ValueError(f"unknown metric {key!r}: expected '<name>_at_<k>' with name one of "
                         f"{ALL_METRICS} and k >= 1, e.g. 'ndcg_at_10'")
    return name, int(at)


def is_metric_key(key) -> bool:
    """Whether ``key`` names a ranking metric at some k (see :func:`parse_metric`)."""
    try:
        parse_metric(key)
    except ValueError:
        return False
    return True


def _check_ks(k) -> np.ndarray:
    ks = np.atleast_1d(np.asarray(k))
    if ks.size == 0 or not np.issubdtype(ks.dtype, np.integer):
        raise TypeError(f"k must be an int or a sequence of ints, got {k!r}")
    if (ks <= 0).any():
        raise ValueError(f"k must be positive, got {k!r}")
    return np.unique(ks).astype(np.int32)


def ranking_metrics(recommended: np.ndarray, test_X, k: int | Sequence[int] = (10, 20),
                    metrics: Sequence[str] = DEFAULT_METRICS, num_threads: int = 0,
                    n_items: int | None = None) -> dict[str, np.ndarray]:
    """Per-user metrics of given top lists (``recommended[u]``, ids best first, -1 = none).

    ``recommended`` row ``i`` is scored against row ``i`` of ``test_X``. Returns a dict
    ``"<metric>_at_<k>" -> per-user array`` (coverage: a 0-d array).
    """
    unknown = set(metrics) - set(RANKING_METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; known: {RANKING_METRICS}")
    test = as_csr(test_X, "test_X", allow_empty=True)
    recs = np.ascontiguousarray(recommended, dtype=np.int32)
    if recs.ndim != 2 or recs.shape[0] != test.shape[0]:
        raise ValueError(f"recommended must have one row per test row ({test.shape[0]}), "
                         f"got shape {recs.shape}")
    ks = _check_ks(k)
    if recs.size:
        size = n_items if n_items is not None else test.shape[1]
        if recs.min() < -1 or recs.max() >= size:
            raise ValueError(f"recommended ids must lie in [0, {size}) (-1 for none), got "
                             f"[{recs.min()}, {recs.max()}]")
        ordered = np.sort(recs, axis=1)
        repeated = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)
        if repeated.any():
            row = int(np.flatnonzero(repeated.any(axis=1))[0])
            raise ValueError(f"recommended row {row} lists an item twice; a hit would count "
                             "twice")
    n_ks, n_users = ks.size, recs.shape[0]
    hits = np.zeros((n_ks, n_users), dtype=np.int32)
    dcg, ap, rr = (np.zeros((n_ks, n_users)) for _ in range(3))
    if n_users:
        _metrics.ranking_sums(recs, test.indptr, test.indices, ks,
                              resolve_num_threads(num_threads), hits, dcg, ap, rr)
    n_test = np.diff(test.indptr).astype(np.float64)
    discounts = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, ks.max() + 2)))])
    out: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for j, kk in enumerate(ks.tolist()):
            ideal = np.minimum(kk, n_test)
            for name in metrics:
                if name == "ndcg":
                    value = dcg[j] / discounts[ideal.astype(np.int64)]
                elif name == "recall":
                    value = hits[j] / n_test
                elif name == "recall_capped":
                    value = hits[j] / ideal
                elif name == "precision":
                    value = hits[j] / kk
                elif name == "map":
                    value = ap[j] / ideal
                elif name == "mrr":
                    value = rr[j]
                elif name == "hit_rate":
                    value = hits[j] > 0
                else:  # coverage
                    top = recs[:, :kk]
                    size = n_items if n_items is not None else test.shape[1]
                    value = np.unique(top[top >= 0]).size / size
                out[f"{name}_at_{kk}"] = np.asarray(value, dtype=np.float64)
    return out


def evaluate(model, train_X, test_X, k: int | Sequence[int] = (10, 20),
             metrics: Sequence[str] = DEFAULT_METRICS, users=None, exclude_seen: bool = True,
             per_user: bool = False, batch_size: int = 8192, num_threads: int = 0,
             show_progress: bool = False, item_vectors: np.ndarray | None = None,
             cluster=None, n_shards: int | None = None):
    """Full-ranking evaluation of a fitted model (formulas in the module docstring).

    Parameters
    ----------
    model : Recommender
    train_X : CSR or Interactions (n_users, n_items)
        The history the model scores from; its items are excluded from the rankings.
    test_X : CSR or Interactions, same shape
        Held-out items. Two ``Interactions`` with different id maps are matched by raw id
        (:func:`align_ids`).
    k : int or sequence of int
    metrics : names from ``ALL_METRICS``
        Accuracy (``RANKING_METRICS``) and beyond-accuracy (:mod:`recsys.beyond`: ``epc``,
        ``miuf``, ``ild``, ``arp``, ``aplt`` per user; ``gini``, ``entropy`` of the exposure),
        the latter from the popularity in ``train_X``.
    users : array of int, optional
        Restrict to these rows (integer row indices); default every row of ``test_X`` with a
        test item. Requested users without a test item are skipped and counted
        (``"n_users_skipped"``), never averaged in as NaN.
    per_user : bool
        Also return the per-user values (and the evaluated user rows under ``"users"``).
    batch_size : int
        Users per ``recommend`` call (progress granularity, memory bound).
    item_vectors : ndarray (n_items, d), optional
        The representation whose cosine distance ``ild`` averages (default: the items'
        training co-occurrence).
    cluster : distributed.Client, scheduler address or ``"local"``, optional
        Rank the users on a Dask cluster, ``n_shards`` blocks of users (default: two per
        worker): each task loads the model from its saved file (shipped as bytes, never
        pickled) and the history matrix, and returns its users' top-k; the metrics are then
        computed here. The result is the single-process evaluation's.

    Returns
    -------
    dict ``"<metric>_at_<k>" -> mean`` (plus ``"n_users"`` and ``"n_users_skipped"``);
    with ``per_user`` a pair
    ``(means, per_user_arrays)``.
    """
    test_X = align_ids(test_X, train_X)
    train = as_csr(train_X, "train_X", allow_empty=True)
    test = as_csr(test_X, "test_X")
    if train.shape != test.shape:
        raise ValueError(f"train_X and test_X must have the same shape, got {train.shape} "
                         f"and {test.shape}")
    ks = _check_ks(k)
    has_test = np.diff(test.indptr) > 0
    if users is None:
        users = np.flatnonzero(has_test).astype(np.int32)
        skipped = 0
    else:
        users, _ = check_users(users, test.shape[0])
        keep = has_test[users]
        skipped = int(users.size - keep.sum())
        if skipped:
            logger.warning("evaluate: %d of the %d requested users have no test item and are "
                           "skipped", skipped, users.size)
        users = users[keep]
    if users.size == 0:
        raise ValueError("no test users: test_X has no interactions for the requested users")
    width = int(min(ks.max(), test.shape[1]))
    if cluster is not None:
        recs = _rank_on_cluster(model, train, users, width, exclude_seen, batch_size, cluster,
                                n_shards)
    else:
        recs = _rank(model, train, users, width, exclude_seen, batch_size, show_progress)
    unknown = set(metrics) - set(ALL_METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; known: {ALL_METRICS}")
    accuracy = [m for m in metrics if m in RANKING_METRICS]
    values = ranking_metrics(recs, test[users], ks, accuracy, num_threads,
                             n_items=test.shape[1]) if accuracy else {}
    beyond = [m for m in metrics if m in BEYOND_METRICS]
    if beyond:
        values.update(beyond_metrics(recs, train, ks, beyond, item_vectors))
    means = {name: float(np.mean(v)) for name, v in values.items()}
    means["n_users"] = int(users.size)
    means["n_users_skipped"] = skipped
    if per_user:
        return means, {"users": users, **{n: v for n, v in values.items() if v.ndim}}
    return means


def _rank(model, train, users, width, exclude_seen, batch_size, show_progress=False):
    """Top-``width`` of ``users`` (rows of ``train``), ``batch_size`` users per call."""
    recs = np.empty((users.size, width), dtype=np.int32)
    batches = range(0, users.size, batch_size)
    for start in tqdm(batches, desc="evaluate", disable=not show_progress):
        batch = users[start:start + batch_size]
        recs[start:start + batch.size] = model.recommend(batch, train, k=width,
                                                         exclude_seen=exclude_seen)[0]
    return recs


def _rank_task(model_file: bytes, train, users, width, exclude_seen, batch_size):
    """A Dask task: load the model from its file's bytes and rank a block of users."""
    import tempfile
    from pathlib import Path

    from recsys.models import Recommender

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.npz"
        path.write_bytes(model_file)
        model = Recommender.load(path)
    with blas_limit(1):  # one BLAS thread per single-threaded worker
        return _rank(model, train, users, width, exclude_seen, batch_size)


def _rank_on_cluster(model, train, users, width, exclude_seen, batch_size, cluster,
                     n_shards):
    import tempfile
    from pathlib import Path

    from recsys.distributed import open_shards, shard_bounds

    with tempfile.TemporaryDirectory() as tmp:
        model_file = model.save(Path(tmp) / "model.npz").read_bytes()
    with open_shards(cluster, n_shards) as shards:
        client = shards.client
        bounds = shard_bounds(users.size, shards.n_shards)
        shared = client.scatter([model_file, train], broadcast=True)
        futures = [client.submit(_rank_task, shared[0], shared[1], users[a:b], width,
                                 exclude_seen, batch_size, pure=False)
                   for a, b in zip(bounds[:-1], bounds[1:])]
        blocks = client.gather(futures)
    return np.concatenate(blocks).astype(np.int32, copy=False) if blocks else \
        np.empty((0, width), np.int32)


def align_ids(test_X, train_X):
    """``test_X`` in ``train_X``'s index space when both are ``Interactions`` with different
    id maps (rows and columns matched by raw id); anything else is returned as it is.

    Raises ``ValueError`` when the test part holds users or items that the training part does
    not know (they cannot be ranked from a training history); build both parts over shared
    maps (``Interactions.from_pandas(..., users=, items=)``) to keep such ids.
    """
    if not all(hasattr(x, "users") and hasattr(x, "items") for x in (train_X, test_X)):
        return test_X
    if test_X.users == train_X.users and test_X.items == train_X.items:
        return test_X
    rows = train_X.users.to_index(test_X.users.raw_ids, missing=-1)
    cols = train_X.items.to_index(test_X.items.raw_ids, missing=-1)
    coo = test_X.matrix.tocoo()
    for what, index, used in (("users", rows, coo.row), ("items", cols, coo.col)):
        unknown = np.unique(used[index[used] < 0])
        if unknown.size:
            raw = getattr(test_X, what).to_raw(unknown[:5]).tolist()
            raise ValueError(f"test_X holds {unknown.size} {what} unknown to train_X (e.g. "
                             f"{raw}); its id maps differ from train_X's, and only known ids "
                             "can be ranked. Build both over shared id maps")
    matrix = sp.csr_matrix((coo.data, (rows[coo.row], cols[coo.col])), shape=train_X.shape,
                           dtype=np.float32)
    logger.info("evaluate: test_X re-indexed onto train_X's id maps (matched by raw id)")
    return type(test_X)(matrix, train_X.users, train_X.items)


def rmse(y_true, y_pred) -> float:
    """Root mean squared error ``sqrt(mean((y - y_hat)^2))``."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


def mae(y_true, y_pred) -> float:
    """Mean absolute error ``mean(|y - y_hat|)``."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean(np.abs(y_true - y_pred)))


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"shapes differ: {y_true.shape} and {y_pred.shape}")
    if y_true.size == 0:
        raise ValueError("no values to compare")
    if not (np.isfinite(y_true).all() and np.isfinite(y_pred).all()):
        raise ValueError("values hold NaN or inf")
    return y_true, y_pred


def evaluate_ratings(model, test_X, X) -> dict[str, float]:
    """RMSE and MAE of ``model.predict`` on every stored (user, item, rating) of ``test_X``.

    ``X`` is the history matrix the model predicts from (usually the training matrix).
    """
    test = as_csr(test_X, "test_X").tocoo()
    pred = model.predict(test.row, test.col, X)
    return {"rmse": rmse(test.data, pred), "mae": mae(test.data, pred), "n_ratings": test.nnz}
