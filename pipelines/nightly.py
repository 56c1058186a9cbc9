"""The nightly batch job of a TOML file (``recsys run job.toml`` does the same).

    python pipelines/nightly.py pipelines/nightly.toml [--quiet]

See :mod:`recsys.pipeline` for the steps and :mod:`recsys.config` for the file's keys.
"""

from __future__ import annotations

import argparse
import json
import logging

from recsys.pipeline import run_job


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", help="the TOML job file")
    parser.add_argument("--quiet", action="store_true", help="only the summary")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("mlflow", "alembic", "optuna", "distributed"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    print(json.dumps(run_job(args.job, show_progress=not args.quiet), indent=2, default=str))


if __name__ == "__main__":
    main()
