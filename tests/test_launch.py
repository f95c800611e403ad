"""`cosim/launch.py`: finding mpiexec, building and running the command, PMI detection."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cosim import launch
from cosim.errors import CosimError
from scenarios import neural_mass, scenario_text, simulation

SCENARIO = scenario_text(simulation(duration=2.0), engines={"cortex": neural_mass()})


def _fake_exe(path: Path) -> Path:
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_mpiexec_next_to_python_wins_over_path(tmp_path, monkeypatch):
    venv_bin, other = tmp_path / "venv" / "bin", tmp_path / "other"
    venv_bin.mkdir(parents=True)
    other.mkdir()
    _fake_exe(other / "mpiexec")
    monkeypatch.setenv("PATH", str(other))
    python = venv_bin / "python"
    assert launch.find_mpiexec(python) == str(other / "mpiexec")
    _fake_exe(venv_bin / "mpiexec")
    assert launch.find_mpiexec(python) == str(venv_bin / "mpiexec")


def test_no_mpiexec_is_a_one_line_error_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CosimError) as err:
        launch.mpiexec_command(2, ["-m", "cosim"], python=str(tmp_path / "python"))
    assert "pip install cosim[mpi]" in err.value.message()
    with pytest.raises(CosimError, match="--np must be ≥ 1"):
        launch.mpiexec_command(0, [], mpiexec="mpiexec")


def test_strip_np_and_command():
    argv = ["run", "s.toml", "--np", "4", "--overwrite", "--np=3", "--", "--np"]
    assert launch.strip_np(argv) == ["run", "s.toml", "--overwrite", "--", "--np"]
    cmd = launch.mpiexec_command(3, ["-m", "cosim", "run", "s.toml"], mpiexec="/x/mpiexec")
    assert cmd == ["/x/mpiexec", "-n", "3", sys.executable, "-m", "cosim", "run", "s.toml"]


def test_launcher_world_size_from_the_environment():
    assert launch.launcher_world_size({}) is None
    # a batch script inside an allocation is not a launched rank
    assert launch.launcher_world_size({"SLURM_NTASKS": "4", "SLURM_PROCID": "0"}) is None
    assert launch.launcher_world_size({"PMI_RANK": "1", "PMI_SIZE": "4"}) == 4
    assert launch.launcher_world_size({"OMPI_COMM_WORLD_SIZE": "3"}) == 3
    assert launch.launcher_world_size({"PMIX_RANK": "0"}) == -1
    srun_none = {"SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "4", "SLURM_PROCID": "2"}
    assert launch.srun_without_mpi_plugin(srun_none) == 4
    assert launch.srun_without_mpi_plugin({**srun_none, "PMI_SIZE": "4"}) is None
    # Hydra inside an allocation: its proxy step has 1 task per node, PMI_SIZE says 2
    assert launch.srun_without_mpi_plugin({"SLURM_STEP_ID": "1", "SLURM_STEP_NUM_TASKS": "1",
                                           "PMI_SIZE": "2"}) is None


@pytest.mark.mpi
def test_launch_mpiexec_runs_every_rank_and_forwards_the_exit_code(tmp_path):
    if launch.find_mpiexec() is None:
        pytest.skip("no mpiexec (install the mpi extra)")
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO)
    code = ("import sys; from cosim.launch import launch_mpiexec; "
            "sys.exit(launch_mpiexec(sys.argv[1:], 2))")
    ok = subprocess.run([sys.executable, "-c", code, "validate", str(scenario), "--np", "2"],
                        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count("s.toml: ok") == 2          # both ranks ran, --np was removed
    bad = subprocess.run([sys.executable, "-c", code, "validate", str(tmp_path / "none.toml"),
                          "--np=2"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert bad.returncode == 2, bad.stderr
    assert "none.toml: no such file" in bad.stderr


def test_run_command_reports_a_signal_as_128_plus_signal():
    rc = launch.run_command([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"])
    assert rc == 128 + 15


# -- signals to the `cosim run --np` launcher: nothing of the job is left ---------------------

TWO_ENGINES_LONG = """\
[simulation]
duration = 20000.0
sync_interval = 2.0
output = "two.h5"
[connectome]
source = "tvb:connectivity_76"
[engines.left]
type = "neural_mass"
model = "jansen_rit"
regions = ["rA1", "rV1"]
dt = 0.1
[engines.right]
type = "neural_mass"
model = "jansen_rit"
regions = "rest"
dt = 0.1
[record]
period = 1.0
flush_every = 20
"""


def _alive(pid: int) -> bool:
    """Is ``pid`` a live process (a zombie counts as dead)?"""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, ValueError, IndexError):
                pass
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.mpi
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT", "SIGKILL"])
def test_a_signal_to_the_np_launcher_ends_mpiexec_and_every_rank(tmp_path, sig):
    """Before: SIGTERM to `cosim run --np 3` ended the launcher; mpiexec and the three ranks
    kept running and finished on their own.  Now the launcher forwards SIGTERM/SIGINT and
    exits with 128 + signal and one line; killed outright, its mpiexec dies with it."""
    import json
    import os
    import signal
    import time

    if launch.find_mpiexec() is None:
        pytest.skip("no mpiexec (install the mpi extra)")
    signum = getattr(signal, sig)
    (tmp_path / "two.toml").write_text(TWO_ENGINES_LONG)
    out = tmp_path / "two.h5"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("COSIM_DEBUG", None)
    proc = subprocess.Popen([sys.executable, "-m", "cosim", "run", "two.toml", "--np", "3",
                             "-o", str(out), "-q", "--no-monitor"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ranks = Path(str(out) + ".ranks.json")
    try:
        deadline = time.monotonic() + 120
        while not (ranks.exists() and out.exists()) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        time.sleep(1.0)                     # the ranks are in their window loop
        table = json.loads(ranks.read_text())
        job = [e["pid"] for e in table.values()] + _children(proc.pid)    # ranks + mpiexec
        assert len(job) == 4 and all(_alive(p) for p in job), job
        t0 = time.monotonic()
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=15)
        ended = time.monotonic() - t0
        left = job
        while left and time.monotonic() - t0 < 10:
            left = [p for p in left if _alive(p)]
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert ended < 10, ended
    assert left == [], f"left running: {left}"
    if signum == signal.SIGKILL:
        return
    assert proc.returncode == 128 + signum, (proc.returncode, stderr)
    # one line: the ranks stop at a window boundary and rank 0 says so (SIGINT reaches them
    # as SIGTERM); the launcher adds nothing
    lines = [ln for ln in stderr.strip().splitlines() if ln.startswith("cosim:")]
    assert len(lines) == 1 and lines[0].startswith("cosim: terminated (SIGTERM) at t = "), stderr
    assert "Traceback" not in stderr and "ended first" not in stderr, stderr
    assert "mpiexec@" not in stderr, stderr         # mpiexec got SIGTERM: nothing to say


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_at_a_terminal_ends_the_np_job_once(tmp_path):
    """Ctrl-C at a terminal reaches launcher and mpiexec (one foreground process group): the
    launcher does not send a second signal (Hydra would abort hard), the job ends, exit 130."""
    import json
    import os
    import pty
    import select
    import time

    if launch.find_mpiexec() is None:
        pytest.skip("no mpiexec (install the mpi extra)")
    (tmp_path / "two.toml").write_text(TWO_ENGINES_LONG)
    out = tmp_path / "two.h5"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("COSIM_DEBUG", None)
    pid, master = pty.fork()
    if pid == 0:                                  # the child: session leader on the pty
        os.chdir(tmp_path)
        os.execve(sys.executable, [sys.executable, "-m", "cosim", "run", "two.toml", "--np", "3",
                                   "-o", str(out), "-q", "--no-monitor"], env)
    text = b""

    def drain(seconds):
        nonlocal text
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            r, _, _ = select.select([master], [], [], 0.1)
            if r:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    return False
                if not chunk:
                    return False
                text += chunk
        return True

    ranks = Path(str(out) + ".ranks.json")
    try:
        deadline = time.monotonic() + 120
        while not (ranks.exists() and out.exists()) and time.monotonic() < deadline:
            drain(0.2)
        drain(1.0)
        job = [e["pid"] for e in json.loads(ranks.read_text()).values()] + _children(pid)
        assert len(job) == 4, job
        t0 = time.monotonic()
        os.write(master, b"\x03")                 # Ctrl-C
        while time.monotonic() - t0 < 15:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            drain(0.1)
        ended = time.monotonic() - t0
        left = job
        while left and time.monotonic() - t0 < 10:
            left = [p for p in left if _alive(p)]
            time.sleep(0.1)
    finally:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        os.close(master)
    assert done and ended < 10, (ended, text)
    assert os.waitstatus_to_exitcode(status) == 130, text
    assert left == [], f"left running: {left}"
    lines = text.decode(errors="replace").replace("\r", "").strip().splitlines()
    assert lines[-1].startswith("cosim: interrupted (SIGINT)"), lines
    # mpiexec got exactly one SIGINT (the terminal's): one "Sending Ctrl-C", no forced abort
    assert sum("Sending Ctrl-C" in ln for ln in lines) == 1, lines


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_run_command_ends_what_its_child_leaves_behind_and_nothing_else(tmp_path):
    """A grandchild orphaned by the command is ended; a process the caller started itself
    is not; the caller is no child subreaper afterwards."""
    import os
    import time

    mine = subprocess.Popen(["sleep", "60"])
    note = tmp_path / "orphan.pid"
    code = ("import subprocess, sys; p = subprocess.Popen(['sleep', '60']); "
            f"open({str(note)!r}, 'w').write(str(p.pid))")
    try:
        t0 = time.monotonic()
        assert launch.run_command([sys.executable, "-c", code]) == 0
        assert time.monotonic() - t0 < 8
        orphan = int(note.read_text())
        assert not _alive(orphan)
        assert mine.poll() is None and _alive(mine.pid)
        assert launch._subreaper(False) is False
    finally:
        mine.kill()
        mine.wait()
