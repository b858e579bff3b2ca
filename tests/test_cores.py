"""Thread counts from the cores a process may use, and OpenMP threads that sleep while
they wait: read from real files (a fake ``/proc`` and ``/sys/fs/cgroup`` under
tmp_path) and checked in real child processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from arrive import cores
from arrive.cli.main import run
from arrive.errors import ConfigError
from arrive.testing.factories import random_marketplace, write_data_dir

AFFINITY = len(os.sched_getaffinity(0))
V2_MOUNT = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n"
V1_MOUNT = "32 31 0:29 {root} /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
OTHER_MOUNTS = "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n"


def _fake_root(tmp_path: Path, mountinfo: str, cgroup: str, files: dict[str, str]) -> Path:
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/mountinfo").write_text(OTHER_MOUNTS + mountinfo)
    (tmp_path / "proc/self/cgroup").write_text(cgroup)
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return tmp_path


def test_cgroup_v2_quota_of_the_process_group(tmp_path: Path) -> None:
    root = _fake_root(
        tmp_path,
        V2_MOUNT,
        "0::/user.slice/job\n",
        {
            "sys/fs/cgroup/cpu.max": "max 100000",
            "sys/fs/cgroup/user.slice/job/cpu.max": "150000 100000",
        },
    )
    assert cores.cgroup_cpu_limit(root) == 1.5
    assert cores.available_cores(root) == min(AFFINITY, 2)  # 1.5 CPUs: two threads


def test_cgroup_v2_quota_of_an_ancestor_caps_the_group(tmp_path: Path) -> None:
    root = _fake_root(
        tmp_path,
        V2_MOUNT,
        "0::/user.slice/job\n",
        {
            "sys/fs/cgroup/user.slice/cpu.max": "50000 100000",
            "sys/fs/cgroup/user.slice/job/cpu.max": "max 100000",
        },
    )
    assert cores.cgroup_cpu_limit(root) == 0.5
    assert cores.available_cores(root) == 1


@pytest.mark.parametrize("cpu_max", ["max 100000", "100000 0", "garbage"])
def test_cgroup_v2_without_quota_leaves_the_affinity(tmp_path: Path, cpu_max: str) -> None:
    root = _fake_root(tmp_path, V2_MOUNT, "0::/\n", {"sys/fs/cgroup/cpu.max": cpu_max})
    assert cores.cgroup_cpu_limit(root) is None
    assert cores.available_cores(root) == AFFINITY


def test_cgroup_v1_cfs_quota(tmp_path: Path) -> None:
    base = "sys/fs/cgroup/cpu,cpuacct/batch"
    root = _fake_root(
        tmp_path,
        V1_MOUNT.format(root="/"),
        "4:memory:/batch\n3:cpu,cpuacct:/batch\n0::/\n",
        {f"{base}/cpu.cfs_quota_us": "300000", f"{base}/cpu.cfs_period_us": "100000"},
    )
    assert cores.cgroup_cpu_limit(root) == 3.0
    assert cores.available_cores(root) == min(AFFINITY, 3)


def test_cgroup_v1_in_a_container_reads_the_mount_root(tmp_path: Path) -> None:
    # inside a container the cgroup path names the host's group, mounted as the root
    base = "sys/fs/cgroup/cpu,cpuacct"
    root = _fake_root(
        tmp_path,
        V1_MOUNT.format(root="/docker/abc"),
        "3:cpu,cpuacct:/docker/abc\n",
        {f"{base}/cpu.cfs_quota_us": "100000", f"{base}/cpu.cfs_period_us": "100000"},
    )
    assert cores.cgroup_cpu_limit(root) == 1.0
    assert cores.available_cores(root) == 1


def test_cgroup_v1_unlimited_quota(tmp_path: Path) -> None:
    base = "sys/fs/cgroup/cpu,cpuacct"
    root = _fake_root(
        tmp_path,
        V1_MOUNT.format(root="/"),
        "3:cpu,cpuacct:/\n",
        {f"{base}/cpu.cfs_quota_us": "-1", f"{base}/cpu.cfs_period_us": "100000"},
    )
    assert cores.cgroup_cpu_limit(root) is None


def test_no_cgroup_files_means_no_quota(tmp_path: Path) -> None:
    assert cores.cgroup_cpu_limit(tmp_path) is None
    assert cores.available_cores(tmp_path) == AFFINITY


@pytest.mark.skipif(AFFINITY < 2, reason="needs two CPUs to take one away")
def test_affinity_of_a_real_process_sets_every_thread_count() -> None:
    script = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))});"
        "import arrive.cores as c, polars as pl;"
        "print(c.available_cores(), c.threads(), pl.thread_pool_size(),"
        " os.environ['OMP_NUM_THREADS'])"
    )
    env = cores.without_ours(os.environ)
    env.pop(cores.THREADS_ENV, None)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, check=True)
    assert out.stdout.split() == [b"1", b"1", b"1", b"1"]


def test_threads_override() -> None:
    assert cores.threads({cores.THREADS_ENV: "3"}) == 3
    assert cores.threads({cores.THREADS_ENV: " 1 "}) == 1
    assert cores.threads({cores.THREADS_ENV: ""}) == cores.available_cores()
    assert cores.threads({}) == cores.available_cores()


@pytest.mark.parametrize("raw", ["0", "-2", "two", "1.5", "5000"])
def test_bad_override_names_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"^ARRIVE_THREADS: "):
        cores.threads({cores.THREADS_ENV: raw})


def test_environment_defaults_leave_the_users_values() -> None:
    env = {"OMP_WAIT_POLICY": "ACTIVE", "POLARS_MAX_THREADS": "7", cores.THREADS_ENV: "3"}
    cores.prepare_environment(env)
    assert env["OMP_WAIT_POLICY"] == "ACTIVE"
    assert "KMP_BLOCKTIME" not in env  # the user chose how threads wait
    assert env["POLARS_MAX_THREADS"] == "7"
    assert env["OMP_NUM_THREADS"] == "3"


def test_environment_follows_a_new_override() -> None:
    env = {cores.THREADS_ENV: "3"}
    cores.prepare_environment(env)
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert env["KMP_BLOCKTIME"] == "0"
    assert env["POLARS_MAX_THREADS"] == env["OMP_NUM_THREADS"] == "3"
    env[cores.THREADS_ENV] = "1"
    env["OMP_NUM_THREADS"] = "5"  # changed by the user since: theirs now
    cores.prepare_environment(env)
    assert env["POLARS_MAX_THREADS"] == "1"
    assert env["OMP_NUM_THREADS"] == "5"
    assert cores.without_ours(env) == {cores.THREADS_ENV: "1", "OMP_NUM_THREADS": "5"}


def test_invalid_override_never_breaks_the_import() -> None:
    env = {cores.THREADS_ENV: "lots"}
    cores.prepare_environment(env)
    assert env["OMP_NUM_THREADS"] == str(cores.available_cores())


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--threads", "0"], {}, "--threads: must be from 1 to 1024, got 0"),
        (["--threads", "x"], {}, "--threads: not a whole number of threads: 'x'"),
        ([], {cores.THREADS_ENV: "many"}, "ARRIVE_THREADS: not a whole number"),
    ],
)
def test_cli_mistakes_are_one_line_and_exit_2(
    args: list[str],
    env: dict[str, str],
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = run([*args, "train", str(tmp_path), "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert expected in err
    assert "Traceback" not in err


# the `arrive` command itself, with a hook noting the environment when each library is
# imported (before its module runs, so before LightGBM loads libgomp)
_CHILD = """
import json, os, sys
seen = {}
names = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "POLARS_MAX_THREADS")
def hook(event, args):
    if event == "import" and args[0] in ("lightgbm", "polars") and args[0] not in seen:
        seen[args[0]] = {name: os.environ.get(name) for name in names}
sys.addaudithook(hook)
from arrive.cli.main import run
code = run(sys.argv[1:])
import polars
print(json.dumps({"code": code, "seen": seen, "polars_threads": polars.thread_pool_size()}))
"""


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    market = random_marketplace(7, n_orders=800, days=10)
    return write_data_dir(tmp_path_factory.mktemp("cores-data"), market)


def _train_child(
    data: Path, run_dir: Path, args: list[str], env: dict[str, str]
) -> tuple[dict[str, Any], str]:
    command = [sys.executable, "-c", _CHILD, *args, "train", str(data), "--out", str(run_dir)]
    command += ["--no-register", "--quiet", "--no-selection", "--param", "n_estimators=20"]
    inherited = cores.without_ours(os.environ)
    inherited.pop(cores.THREADS_ENV, None)
    child_env = {**inherited, "OMP_DISPLAY_ENV": "VERBOSE", **env}
    done = subprocess.run(
        command, check=False, env=child_env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def _num_threads_of_the_boosters(run_dir: Path) -> set[str]:
    found = set()
    for path in (run_dir / "model").rglob("*.txt"):
        found |= {line for line in path.read_text().splitlines() if line.startswith("[num_threads")}
    return found


@pytest.mark.slow
def test_arrive_train_sets_the_wait_policy_before_lightgbm_loads(
    small_data: Path, tmp_path: Path
) -> None:
    threads = cores.available_cores() + 1  # differs from what OpenMP would pick itself
    result, err = _train_child(small_data, tmp_path / "run", ["--threads", str(threads)], {})
    assert result["code"] == 0
    want = {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": str(threads)}
    assert result["seen"]["lightgbm"] == {**want, "POLARS_MAX_THREADS": str(threads)}
    assert result["seen"]["polars"]["POLARS_MAX_THREADS"] == str(threads)
    assert result["polars_threads"] == threads
    # libgomp's own report, printed when it loads: waiting threads sleep, no spinning
    assert "OMP_WAIT_POLICY = 'PASSIVE'" in err
    assert "GOMP_SPINCOUNT = '0'" in err
    assert f"OMP_NUM_THREADS = '{threads}'" in err
    assert _num_threads_of_the_boosters(tmp_path / "run") == {f"[num_threads: {threads}]"}


@pytest.mark.slow
def test_arrive_train_leaves_the_users_wait_policy(small_data: Path, tmp_path: Path) -> None:
    env = {"OMP_WAIT_POLICY": "ACTIVE", cores.THREADS_ENV: "1"}
    result, err = _train_child(small_data, tmp_path / "run", [], env)
    assert result["seen"]["lightgbm"]["OMP_WAIT_POLICY"] == "ACTIVE"
    assert "OMP_WAIT_POLICY = 'ACTIVE'" in err
    assert _num_threads_of_the_boosters(tmp_path / "run") == {"[num_threads: 1]"}
