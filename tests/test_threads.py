"""Thread counts: the cores a process may use, and BLAS threads that do not collapse when a
core is busy."""

import os
import subprocess
import sys

import pytest

from recsys import _threads


def test_cgroup_quotas_v2_and_v1(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert _threads._cgroup_quota(str(tmp_path)) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert _threads._cgroup_quota(str(tmp_path)) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert _threads._cgroup_quota(str(tmp_path)) == 3.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert _threads._cgroup_quota(str(tmp_path)) is None


def test_available_cores_follow_the_quota_and_the_affinity_mask(monkeypatch):
    monkeypatch.setattr(_threads, "_cgroup_quota", lambda: 1.5)
    assert _threads.available_cores() == 1  # 1.5 CPUs: one thread never oversubscribes
    monkeypatch.setattr(_threads, "_cgroup_quota", lambda: None)
    assert _threads.available_cores() == len(os.sched_getaffinity(0))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(_threads, "available_cores", lambda: 1)
    assert _threads.resolve_num_threads(0) == 1
    assert _threads.resolve_num_threads(3) == 3  # an explicit count is kept


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs two cores and Linux affinity")
def test_a_process_pinned_to_one_core_uses_one_thread():
    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "from recsys._threads import resolve_num_threads, blas_threads; "
            "print(resolve_num_threads(0), blas_threads(0))")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    assert out.stdout.split() == ["1", "1"]


def test_blas_threads_use_the_idle_cores_for_large_calls_only(monkeypatch):
    monkeypatch.setattr(_threads, "resolve_num_threads",
                        lambda n: n if n else 2)
    monkeypatch.setattr(_threads, "idle_cores", lambda sample_s=0.05: 0.9)
    assert _threads.blas_threads(0) == 1  # a core busy: one BLAS thread
    monkeypatch.setattr(_threads, "idle_cores", lambda sample_s=0.05: 1.9)
    assert _threads.blas_threads(0) == 2
    assert _threads.blas_threads(0, flops=1e6) == 1  # too small to pay for threads
    assert _threads.blas_threads(2, flops=1e6) == 2  # asked for: given
    monkeypatch.setattr(_threads, "idle_cores", lambda sample_s=0.05: None)  # no /proc/stat
    assert _threads.blas_threads(0) == 2


def test_idle_cores_sees_a_busy_core():
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two cores")
    calm = _threads.idle_cores(0.2)
    if calm is None or calm < 0.8:
        pytest.skip(f"no idle core to start from ({calm}): the machine is busy")
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        import time

        time.sleep(0.5)
        busy = _threads.idle_cores(0.3)
    finally:
        hog.kill()
        hog.wait()
    assert busy is not None and busy < calm - 0.3
