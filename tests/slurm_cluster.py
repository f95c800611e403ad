"""A one-node SLURM cluster on this machine, for tests that submit real sbatch jobs.

:func:`ensure_cluster` installs Debian's ``slurm-wlm`` and ``munge`` when ``sbatch`` is
missing (root and ``apt-get`` needed; once per machine), then starts ``munged`` (as user
munge), ``slurmctld`` and ``slurmd`` with a private key, socket, configuration and state
under ``/tmp/cosim-slurm`` — nothing in ``/etc`` is used or changed.  It is idempotent:
daemons already running from that folder are reused.  Clients find the cluster through
``SLURM_CONF`` (see :attr:`Cluster.env`).  :func:`stop_cluster` ends the daemons this
process started.

Every external command has a timeout, so a broken installation fails instead of hanging.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

STATE_DIR = Path("/tmp/cosim-slurm")
PARTITION = "debug"
CTLD_PORT = 16817          # not the default 6817, so a site/system slurm is never touched
SLURMD_PORT = 16818
INSTALL_TIMEOUT_S = 1500
TERMINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
                   "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}


class SlurmUnavailable(Exception):
    """SLURM cannot be installed here (not root, no apt-get): tests should skip."""


@dataclass
class Cluster:
    state_dir: Path
    conf: Path
    hostname: str
    cpus: int
    started: bool = False                       # True if this process started the daemons
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """Environment for clients (sbatch, scontrol, …) and for jobs they submit."""
        env = dict(os.environ)
        env["SLURM_CONF"] = str(self.conf)
        return env

    def run(self, *cmd: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(list(cmd), env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{shlex.join(cmd)} failed ({proc.returncode}): "
                               f"{proc.stderr.strip() or proc.stdout.strip()}")
        return proc

    def log_tail(self, n: int = 30) -> str:
        out = []
        for name in ("slurmctld.log", "slurmd.log", "munged.log"):
            p = self.state_dir / "log" / name
            if p.exists():
                lines = p.read_text(errors="replace").splitlines()[-n:]
                out.append(f"--- {p}\n" + "\n".join(lines))
        return "\n".join(out)


# -- installation ----------------------------------------------------------------------------

def install_slurm(timeout: float = INSTALL_TIMEOUT_S) -> None:
    """``apt-get install slurm-wlm munge`` unless ``sbatch`` is already there."""
    if shutil.which("sbatch") and shutil.which("slurmctld") and shutil.which("munged"):
        return
    if os.geteuid() != 0:
        raise SlurmUnavailable("SLURM is not installed and installing it needs root "
                               "(apt-get install slurm-wlm munge)")
    if not shutil.which("apt-get"):
        raise SlurmUnavailable("SLURM is not installed and this machine has no apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    deadline = time.monotonic() + timeout
    for cmd in (["apt-get", "-o", "DPkg::Lock::Timeout=300", "update"],
                ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-q",
                 "slurm-wlm", "munge"]):
        left = deadline - time.monotonic()
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                                  timeout=max(left, 1), stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{shlex.join(cmd)} did not finish in {timeout:.0f} s") from None
        if proc.returncode != 0:
            raise RuntimeError(f"{shlex.join(cmd)} failed ({proc.returncode}):\n"
                               + (proc.stdout + proc.stderr)[-3000:])
    for exe in ("sbatch", "slurmctld", "slurmd", "munged"):
        if not shutil.which(exe):
            raise RuntimeError(f"apt-get installed slurm-wlm and munge but {exe} is not on PATH")


# -- configuration ---------------------------------------------------------------------------

def _real_memory_mb() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return max(256, int(int(line.split()[1]) / 1024 * 0.8))
    return 1024


def slurm_conf(state: Path, hostname: str, cpus: int, memory_mb: int) -> str:
    munge_socket = state / "munge" / "munge.socket"
    return f"""\
# One-node test cluster written by tests/slurm_cluster.py
ClusterName=cosimtest
SlurmctldHost={hostname}(127.0.0.1)
SlurmctldPort={CTLD_PORT}
SlurmdPort={SLURMD_PORT}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
SlurmUser=root
SlurmdUser=root
StateSaveLocation={state}/spool/ctld
SlurmdSpoolDir={state}/spool/d
SlurmctldPidFile={state}/run/slurmctld.pid
SlurmdPidFile={state}/run/slurmd.pid
SlurmctldLogFile={state}/log/slurmctld.log
SlurmdLogFile={state}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=300
SlurmctldTimeout=60
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
NodeName={hostname} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


# -- daemons ---------------------------------------------------------------------------------

def _alive(pid_file: Path, name: str) -> int | None:
    try:
        pid = int(pid_file.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return None
    return pid if name.encode() in cmdline else None


def _daemon_pids(state: Path) -> dict[str, int | None]:
    return {"munged": _alive(state / "munge" / "munged.pid", "munged"),
            "slurmctld": _alive(state / "run" / "slurmctld.pid", "slurmctld"),
            "slurmd": _alive(state / "run" / "slurmd.pid", "slurmd")}


def _wait(predicate, timeout: float, what: str, cluster: Cluster | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    tail = cluster.log_tail() if cluster else ""
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")


def _run_checked(cmd: list[str], *, timeout: float = 30, **kw) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({proc.returncode}): "
                           f"{(proc.stderr or proc.stdout).strip()}")
    return proc.stdout


def _start_munged(state: Path) -> None:
    mdir = state / "munge"
    mdir.mkdir(parents=True, exist_ok=True)
    key = mdir / "munge.key"
    if not key.exists():
        key.write_bytes(os.urandom(1024))
    shutil.chown(mdir, "munge", "munge")
    shutil.chown(key, "munge", "munge")
    os.chmod(mdir, 0o755)  # clients must reach the socket; the key itself is 0400
    os.chmod(key, 0o400)
    sock = mdir / "munge.socket"
    for stale in (sock, mdir / "munge.socket.lock"):
        stale.unlink(missing_ok=True)
    _run_checked(["munged", f"--key-file={key}", f"--socket={sock}",
                  f"--pid-file={mdir / 'munged.pid'}", f"--log-file={mdir / 'munged.log'}",
                  f"--seed-file={mdir / 'munged.seed'}"], user="munge", group="munge")
    _wait(sock.exists, 20, "the munge socket")
    cred = _run_checked(["munge", "-n", f"--socket={sock}"], timeout=10)
    _run_checked(["unmunge", f"--socket={sock}"], input=cred, timeout=10)


def _controller_up(cluster: Cluster) -> bool:
    proc = cluster.run("scontrol", "ping", timeout=10, check=False)
    return proc.returncode == 0 and "is up" in proc.stdout.lower()


def _node_state(cluster: Cluster) -> str:
    proc = cluster.run("sinfo", "-h", "-N", "-o", "%T", timeout=10, check=False)
    return proc.stdout.strip().lower() if proc.returncode == 0 else ""


def ensure_cluster(state_dir: Path = STATE_DIR, *, install_timeout: float = INSTALL_TIMEOUT_S) -> Cluster:
    """Install SLURM if needed and make sure the one-node cluster is up; return it.

    Raises :class:`SlurmUnavailable` when SLURM is missing and cannot be installed, and
    ``RuntimeError`` (with the daemons' log tails) when something else goes wrong.
    """
    install_slurm(install_timeout)
    if os.geteuid() != 0:
        raise SlurmUnavailable("starting the test cluster (munged as user munge, slurmd) needs root")
    state = Path(state_dir)
    hostname = socket.gethostname().split(".")[0]
    cpus = os.cpu_count() or 1
    cluster = Cluster(state, state / "etc" / "slurm.conf", hostname, cpus)

    pids = _daemon_pids(state)
    if all(pids.values()) and _controller_up(cluster):
        cluster.pids = dict(pids)  # reused: not ours to stop
        _ensure_node_idle(cluster)
        return cluster

    _kill(pids)  # a half-running cluster from an earlier session
    for sub in ("etc", "log", "run", "spool/ctld", "spool/d"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(state, 0o755)
    cluster.conf.write_text(slurm_conf(state, hostname, cpus, _real_memory_mb()))
    cluster.started = True
    _start_munged(state)
    try:
        cluster.run("slurmctld", "-f", str(cluster.conf), timeout=30)
        _wait(lambda: _controller_up(cluster), 60, "slurmctld to answer scontrol ping", cluster)
        cluster.run("slurmd", "-f", str(cluster.conf), timeout=30)
        _ensure_node_idle(cluster)
    except BaseException:
        stop_cluster(cluster)
        raise
    cluster.pids = dict(_daemon_pids(state))
    return cluster


def _ensure_node_idle(cluster: Cluster) -> None:
    def ready() -> bool:
        st = _node_state(cluster)
        if any(s in st for s in ("drain", "down")) and "*" not in st:
            cluster.run("scontrol", "update", f"nodename={cluster.hostname}", "state=resume",
                        timeout=10, check=False)
        return st.startswith(("idle", "mix", "alloc", "completing"))

    _wait(ready, 90, f"node {cluster.hostname} to become idle", cluster)


def _kill(pids: dict[str, int | None], timeout: float = 10) -> None:
    live = [p for p in pids.values() if p]
    for pid in live:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    for pid in live:
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.1)
        if Path(f"/proc/{pid}").exists():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def stop_cluster(cluster: Cluster) -> None:
    """Stop the daemons if this process started them (reused daemons keep running)."""
    if cluster.started:
        _kill(_daemon_pids(cluster.state_dir))   # all at once: each takes ~2 s to stop
        cluster.started = False


# -- jobs ------------------------------------------------------------------------------------

def submit(cluster: Cluster, script: Path, *args: str, cwd: Path | None = None) -> str:
    """``sbatch --parsable SCRIPT``; returns the job id."""
    proc = subprocess.run(["sbatch", "--parsable", *args, str(script)], env=cluster.env,
                          cwd=cwd, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"sbatch {script} failed: {proc.stderr.strip()}")
    return proc.stdout.strip().split(";")[0]


def job_records(cluster: Cluster, job_id: str) -> list[dict[str, str]]:
    """``scontrol show job -o ID`` parsed: one dict per job (per task of an array)."""
    proc = cluster.run("scontrol", "show", "job", "-o", job_id, timeout=15, check=False)
    records = []
    for line in proc.stdout.splitlines():
        rec = {}
        for tok in line.split():
            if "=" in tok:
                k, v = tok.split("=", 1)
                rec[k] = v
        if rec:
            records.append(rec)
    return records


def wait_for_job(cluster: Cluster, job_id: str, timeout: float = 120) -> list[dict[str, str]]:
    """Wait until every task of job ``job_id`` reached a final state; return the records.

    On timeout the job is cancelled and ``RuntimeError`` names the states it was in.
    """
    deadline = time.monotonic() + timeout
    records: list[dict[str, str]] = []
    while time.monotonic() < deadline:
        records = job_records(cluster, job_id)
        pending_range = any("-" in r.get("ArrayTaskId", "") or "," in r.get("ArrayTaskId", "")
                            for r in records)
        if records and not pending_range and all(r.get("JobState") in TERMINAL_STATES
                                                 for r in records):
            return records
        time.sleep(0.5)
    cluster.run("scancel", job_id, timeout=15, check=False)
    states = [(r.get("JobId"), r.get("JobState"), r.get("Reason")) for r in records]
    raise RuntimeError(f"job {job_id} not finished after {timeout:.0f} s: {states}\n"
                       f"{cluster.log_tail(15)}")
