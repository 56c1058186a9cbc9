"""Benchmarks against the anchors: ``python -m benchmarks run [--quick]`` (see __main__.py)."""

#: The suite's sections, in run (and page) order: name -> commands (script and arguments); the
#: first command, with ``--quick``, is the quick run.
SECTIONS: dict[str, list[list[str]]] = {
    "topk": [["bench_topk.py"]],
    "evaluation": [["bench_evaluation.py"]],
    "ease": [["bench_ease.py"]],
    "altmin": [["bench_altmin.py"],
               ["bench_altmin.py", "--recovery-only", "--n", "4000", "--density", "0.5",
                "--ranks", "128", "256", "--solvers", "cholesky", "sketch",
                "--max-sweeps", "12"]],
    "nmf": [["bench_nmf.py"]],
    "simplex": [["bench_simplex.py"]],
    "accuracy": [["bench_accuracy.py"], ["bench_accuracy.py", "--defaults"]],
    "scaling": [["bench_scaling.py"],
                ["bench_scaling.py", "--sizes", "1e7", "3e7", "1e8", "--items", "100000",
                 "--per-user", "100", "--epochs", "1", "--negatives", "100", "--models",
                 "MostPopular", "ItemKNN", "EASE", "EASE-sparse", "ALS", "BPR", "MaskedNMF",
                 "NBMF", "AltMin", "SimpleX", "--evaluate", "ALS", "ItemKNN", "EASE-sparse",
                 "--recommend", "ALS", "--out", "scaling_large"],
                ["bench_scaling.py", "--sizes", "1e8", "--items", "100000", "--per-user", "100",
                 "--models", "MostPopular", "--parquet", "--out", "scaling_parquet"]],
    "updates": [["bench_updates.py"]],
    "sweep": [["bench_sweep.py"]],
}
