"""The benchmark suite's entry point.

    python -m benchmarks run [--quick] [--only NAME ...] [--skip NAME ...] [--no-report]
    python -m benchmarks report [--quick]

``run`` executes every benchmark script (each in its own process, one after the other, so no
two compete for the cores), streams their tables, keeps each log under
``benchmarks/results/logs/``, records what ran in ``results/run.json`` and then regenerates
the results page: ``benchmarks/README.md`` and the PNG plots (``--quick``: small sizes in a
couple of minutes, CSVs ``*_quick.csv``, page ``results/quick/README.md``; the CI smoke run).
Peers live in their own virtualenvs, created on first use (``benchmarks/.peers``: Surprise,
dwave-samplers; ``benchmarks/.peers-torch``: RecBole on CPU torch, full run only); a peer that
cannot be installed or run is listed on the page with its error. ``report`` only regenerates
the page from the CSVs already there. Exit status 1 when a benchmark failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import SECTIONS, report

HERE = Path(__file__).parent
RESULTS = HERE / "results"
PEER_VENVS = {  # virtualenv -> (requirements file, packages to report)
    ".peers": ("requirements.txt", ["scikit-surprise", "dwave-samplers"]),
    ".peers-torch": ("requirements-torch.txt", ["torch", "recbole"]),
}


def ensure_peers(quick: bool) -> dict[str, dict]:
    """Create the peers' virtualenvs when missing (torch: full run only); report versions or
    the exact error for every peer package."""
    status = {}
    for venv, (requirements, packages) in PEER_VENVS.items():
        path = HERE / venv
        python = path / "bin" / "python"
        if not python.exists() and not (quick and venv == ".peers-torch"):
            print(f"creating {path} (pip install -r peers/{requirements})", flush=True)
            steps = [[sys.executable, "-m", "venv", str(path)],
                     [str(python), "-m", "pip", "install", "--quiet", "-r",
                      str(HERE / "peers" / requirements)]]
            for step in steps:
                proc = subprocess.run(step, capture_output=True, text=True)
                if proc.returncode != 0:
                    lines = (proc.stderr or proc.stdout).strip().splitlines()
                    print(f"  failed: {lines[-1] if lines else proc.returncode}", flush=True)
                    break
        for package in packages:
            if not python.exists():
                status[package] = {"venv": venv, "error": "not installed" + (
                    " (full run only)" if quick and venv == ".peers-torch" else "")}
                continue
            proc = subprocess.run(
                [str(python), "-c", "import importlib.metadata as m, sys; "
                 "print(m.version(sys.argv[1]))", package], capture_output=True, text=True)
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            status[package] = ({"venv": venv, "version": proc.stdout.strip()}
                               if proc.returncode == 0 else
                               {"venv": venv, "error": lines[-1] if lines else "failed"})
    import implicit

    status["implicit"] = {"venv": "project", "version": implicit.__version__}
    return status


def run_sections(names: list[str], quick: bool) -> dict[str, dict]:
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")  # models raise it where they want BLAS threads
    env.setdefault("MKL_NUM_THREADS", "1")
    done = {}
    for name in names:
        commands = SECTIONS[name][:1] if quick else SECTIONS[name]
        start = time.perf_counter()
        status = "ok"
        log_path = logs / f"{name}{'_quick' if quick else ''}.log"
        with open(log_path, "w") as log:
            for command in commands:
                argv = [sys.executable, str(HERE / command[0]), *command[1:]]
                if quick:
                    argv.append("--quick")
                shown = " ".join(["python", f"benchmarks/{command[0]}", *argv[2:]])
                print(f"\n=== {name}: {shown}", flush=True)
                proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, env=env, cwd=HERE.parent)
                for line in proc.stdout:
                    sys.stdout.write(line)
                    log.write(line)
                if proc.wait() != 0:
                    status = f"failed (exit status {proc.returncode}; see {log_path.name})"
                    print(f"=== {name}: {status}", flush=True)
                    break
        done[name] = {"status": status, "seconds": time.perf_counter() - start,
                      "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                      "commit": _git_commit(),
                      "commands": [" ".join(c + (["--quick"] if quick else []))
                                   for c in commands]}
    return done


def _git_commit() -> str:
    proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, cwd=HERE)
    return proc.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the benchmarks, then regenerate the page")
    run.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    run.add_argument("--only", nargs="+", choices=list(SECTIONS), default=None)
    run.add_argument("--skip", nargs="+", choices=list(SECTIONS), default=[])
    run.add_argument("--no-report", action="store_true")
    report_cmd = sub.add_parser("report", help="regenerate the page from the CSVs")
    report_cmd.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)

    if args.command == "report":
        report.write_page(args.quick)
        return 0
    names = [n for n in (args.only or list(SECTIONS)) if n not in args.skip]
    suffix = "_quick" if args.quick else ""
    record_path = RESULTS / f"run{suffix}.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    record.setdefault("sections", {})
    record["peers"] = ensure_peers(args.quick)
    started = dt.datetime.now(dt.timezone.utc)
    done = run_sections(names, args.quick)
    record["sections"].update(done)
    record.update({"machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                              f"{platform.system()}, Python {platform.python_version()}",
                   "last_run": started.isoformat(timespec="seconds")})
    report.write_text_atomic(record_path, json.dumps(record, indent=1) + "\n")
    print("\n=== summary")
    for name, result in done.items():
        print(f"  {name:<11} {result['seconds']:8.1f} s  {result['status']}")
    if not args.no_report:
        print(f"page: {report.write_page(args.quick)}")
    return 0 if all(r["status"] == "ok" for r in done.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
