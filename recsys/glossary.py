"""One vocabulary: the name every model uses for a shared concept, and the synonyms it does not.

``GLOSSARY`` maps each public name to what it means and to the names other libraries (or
earlier recsys releases) use for it; ``tests/test_glossary.py`` checks that no registered
model's parameter is one of those synonyms. Renamed parameters keep working for one release
(``Recommender._renamed_params``, with a ``FutureWarning``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    meaning: str
    synonyms: tuple[str, ...] = ()


GLOSSARY: dict[str, Term] = {
    "factors": Term("dimension of the learned user and item vectors",
                    ("rank", "n_factors", "embedding_dim", "dim", "latent_dim", "components")),
    "l2": Term("ridge strength: the weight of the squared-norm penalty on factors or weights "
               "(EASE: on B)", ("regularization", "reg", "reg_lambda", "lambda_", "lam",
                                "weight_decay", "alpha_reg")),
    "epochs": Term("passes over the training data: alternating sweeps (ALS, AltMin, MaskedNMF, "
                   "NBMF) or SGD epochs (BPR, SimpleX)",
                   ("iterations", "n_epochs", "n_iter", "max_iter", "sweeps", "num_epochs")),
    "solver": Term("the algorithm of a model's main subproblem (``w_solver``: of NBMF's second "
                   "step)", ("use_cg", "method", "algorithm", "optimizer_type")),
    "batch_size": Term("training examples per optimiser step (SGD mini-batch)",
                       ("minibatch", "mini_batch", "batch")),
    "block_size": Term("rows computed together to bound memory; never changes the result",
                       ("chunk", "chunk_size", "block")),
    "biases": Term("learn offsets beside the factors: a global mean and user and item biases "
                   "(SimpleX: the official enable_bias; ``\"item\"`` item biases only)",
                   ("use_bias", "enable_bias", "bias", "use_biases")),
    "learning_rate": Term("SGD / Adam step size", ("lr", "step_size", "eta")),
    "negatives": Term("sampled negative items per positive", ("n_negatives", "num_negatives",
                                                              "num_negs", "neg_samples")),
    "neighbors": Term("neighbours kept per item", ("k_neighbors", "n_neighbors", "topk")),
    "random_state": Term("seed of every stochastic step (int, Generator or None)",
                         ("seed", "random_seed", "rng")),
    "num_threads": Term("OpenMP threads (0: every available core)",
                        ("n_jobs", "threads", "workers", "n_threads")),
    "show_progress": Term("tqdm progress bars", ("verbose", "progress")),
    "history_": Term("fitted per-epoch trace: a list of dicts with ``epoch``, ``elapsed`` and "
                     "the loss or validation metrics of that epoch",
                     ("loss_history_", "trace_", "evals_result_")),
    "best_epoch_": Term("the best evaluated epoch under early stopping (the returned state)",
                        ("best_iteration_", "best_iter_", "best_iteration")),
    "validation": Term("``fit`` argument: held-out interactions that early stopping evaluates",
                       ("valid", "val", "eval_set", "validation_data", "valid_data")),
    "early_stopping": Term("``fit`` argument: the rule that stops training "
                           "(:class:`recsys.models.iterative.EarlyStopping`)",
                           ("early_stop", "early_stopping_rounds", "stopping")),
    "callback": Term("``fit`` argument: ``callback(epoch, model)`` after every epoch",
                     ("callbacks", "hook", "on_epoch_end")),
    "lr_schedule": Term("``fit`` argument: how the learning rate changes over the epochs "
                        "(:class:`recsys.models.iterative.ReduceOnPlateau` or the rate of "
                        "every epoch)", ("lr_scheduler", "scheduler", "learning_rate_schedule")),
}

#: Every synonym -> the glossary name to use instead.
SYNONYMS: dict[str, str] = {syn: name for name, term in GLOSSARY.items()
                            for syn in term.synonyms}

__all__ = ["GLOSSARY", "SYNONYMS", "Term"]
