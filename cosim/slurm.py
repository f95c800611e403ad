"""SLURM batch scripts: one scenario (``cosim slurm``) or a sweep as a job array.

A script is written from :data:`TEMPLATE` (``string.Template``, ``${…}`` fields); the
``slurm/`` folder of the repository holds an example of its output and the cluster guide.
The header says what the job runs: the plan (which rank runs which engine, from
:meth:`cosim.plan.Plan.describe`), the scenario and the output file.

Launch line, by number of tasks K and launcher:

* K = 1: ``"$PYTHON" -m cosim run FILE`` — no MPI launcher (the in-process runner);
* ``srun`` (default): ``srun --mpi=pmi2 --kill-on-bad-exit=1 "$PYTHON" -m cosim run FILE``
  — the cluster's MPI plugin (``--mpi``; ``pmi2`` works with MPICH and the mpich wheel,
  ``pmix`` with Open MPI builds that use PMIx);
* ``mpiexec``: ``"$MPIEXEC" -n "$SLURM_NTASKS" "$PYTHON" -m cosim run FILE`` — the MPI's
  own launcher inside the allocation (Hydra and Open MPI detect SLURM and start their
  proxies with ``srun``).

``--overcommit`` (sbatch's and srun's option of that name) lets a job run more tasks than
it has CPUs: for small engines (most ranks of a hybrid wait on the bus much of the time),
or to test a large layout on one node.

Each rank finds out it is one of K from the launcher's PMI environment
(:func:`cosim.launch.launcher_world_size`), so ``cosim run`` is the same command for all.

Time limit: ``#SBATCH --signal=B:TERM@60`` (``--signal-lead SECONDS``, 0 for none) has
SLURM send SIGTERM to the batch shell 60 s before the limit; the launch line is ``exec``'d,
so the shell *is* the single process, ``srun`` (which forwards SIGTERM to every task) or
``mpiexec`` (which does too).  cosim then ends the run cleanly: the output file is closed
with status ``terminated`` and, with checkpoints enabled, a final checkpoint is written, so
``cosim run --resume`` continues.  60 s is a lead time long enough to flush and checkpoint
a large run; raise it for very large states.  ``scancel`` sends SIGTERM as well.
"""

from __future__ import annotations

import datetime as _dt
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Sequence

from .errors import CosimError
from .launch import find_mpiexec

LAUNCHERS = ("srun", "mpiexec")

TEMPLATE = Template("""\
#!/bin/bash
# ${title}
# Written by `cosim ${command}` (cosim ${version}) on ${date}.
# Submit with:  sbatch ${script_name}
#
${plan_comment}
#SBATCH --job-name=${job_name}
${sbatch_lines}

set -eo pipefail
${site_setup}
PYTHON=${python}
${mpiexec_line}# One thread per rank: the ranks are the parallelism.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

${body}""")

_TIME = re.compile(r"^(\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d+|\d+-\d+:\d{1,2}|"
                   r"\d+-\d+:\d{1,2}:\d{1,2}|UNLIMITED|INFINITE)$", re.IGNORECASE)
_MEM = re.compile(r"^\d+[KMGT]?$", re.IGNORECASE)
_NODES = re.compile(r"^\d+(-\d+)?$")
_WORD = re.compile(r"^[A-Za-z0-9_.,+:@%=/-]+$")
_MPI = re.compile(r"^[a-z0-9_]+$")


@dataclass
class JobOptions:
    """What goes into the ``#SBATCH`` lines and the launch line of a script."""

    job_name: str
    ntasks: int = 1
    nodes: str | None = "1"
    time: str = "01:00:00"
    partition: str | None = None
    account: str | None = None
    mem_per_cpu: str | None = None
    launcher: str = "srun"
    mpi: str = "pmi2"
    python: str = sys.executable
    mpiexec: str | None = None              # None: next to `python`, else mpiexec on PATH
    modules: list[str] = field(default_factory=list)
    setup: list[str] = field(default_factory=list)
    chdir: Path = field(default_factory=Path.cwd)
    log: str | None = None                  # default %x-%j.out (%x-%A_%a.out for arrays)
    array: str | None = None                # "0-9" or "0-9%2"
    sbatch: list[str] = field(default_factory=list)  # extra raw #SBATCH options
    signal_lead_s: int = 60                 # SIGTERM this many s before the time limit; 0: none
    overcommit: bool = False                # more tasks than CPUs (sbatch/srun --overcommit)

    def check(self) -> None:
        """Raise :class:`CosimError` naming the option with a bad value."""
        if self.ntasks < 1:
            raise CosimError(f"must be ≥ 1, got {self.ntasks}", key="--ntasks")
        if not 0 <= self.signal_lead_s <= 65535:      # SLURM's limit for sig_time
            raise CosimError(f"must be between 0 and 65535 s, got {self.signal_lead_s}",
                             key="--signal-lead")
        checks = [("--time", self.time, _TIME, "a SLURM time: minutes, MM:SS, HH:MM:SS, "
                                               "D-HH, D-HH:MM or D-HH:MM:SS"),
                  ("--mem-per-cpu", self.mem_per_cpu, _MEM, "a size such as 2000, 500M or 4G"),
                  ("--nodes", self.nodes, _NODES, "a node count N or a range MIN-MAX"),
                  ("--partition", self.partition, _WORD, "a partition name"),
                  ("--account", self.account, _WORD, "an account name"),
                  ("--job-name", self.job_name, _WORD, "a name without spaces or quotes"),
                  ("--log", self.log, _WORD, "a file name pattern without spaces"),
                  ("--mpi", self.mpi, _MPI, "an MPI plugin type such as pmi2 or pmix")]
        for key, value, pattern, what in checks:
            if value is not None and not pattern.match(str(value)):
                raise CosimError(f"expected {what}, got {value!r}", key=key)
        if any(c.isspace() for c in str(self.chdir)):
            raise CosimError(f"#SBATCH lines cannot hold a path with spaces, got {str(self.chdir)!r}",
                             key="--chdir")
        if self.launcher not in LAUNCHERS:
            raise CosimError(f"must be one of {', '.join(LAUNCHERS)}, got {self.launcher!r}",
                             key="--launcher")
        for key, values in (("--module", self.modules), ("--setup", self.setup),
                            ("--sbatch", self.sbatch)):
            for v in values:
                if "\n" in v or not v.strip():
                    raise CosimError(f"must be one non-empty line, got {v!r}", key=key)
        for v in self.sbatch:
            if not v.startswith("-"):
                raise CosimError(f"expected an sbatch option such as --qos=short, got {v!r}",
                                 key="--sbatch")

    def sbatch_lines(self) -> list[str]:
        log = self.log or ("%x-%A_%a.out" if self.array else "%x-%j.out")
        opts = [f"--ntasks={self.ntasks}"]
        if self.nodes:
            opts.append(f"--nodes={self.nodes}")
        opts.append(f"--time={self.time}")
        for name, value in (("partition", self.partition), ("account", self.account),
                            ("mem-per-cpu", self.mem_per_cpu)):
            if value:
                opts.append(f"--{name}={value}")
        opts += [f"--chdir={self.chdir}", f"--output={log}"]
        if self.array:
            opts.append(f"--array={self.array}")
        if self.signal_lead_s:
            opts.append(f"--signal=B:TERM@{self.signal_lead_s}")
        if self.overcommit:
            opts.append("--overcommit")
        opts += list(self.sbatch)
        return [f"#SBATCH {o}" for o in opts]

    def mpiexec_path(self) -> str:
        return self.mpiexec or find_mpiexec(self.python) or "mpiexec"

    def launch_prefix(self) -> str:
        """Shell words put before ``"$PYTHON" -m cosim …`` (empty for one task)."""
        if self.ntasks == 1:
            return ""
        if self.launcher == "srun":
            over = "--overcommit " if self.overcommit else ""
            return f"srun --mpi={self.mpi} --kill-on-bad-exit=1 {over}"
        return '"$MPIEXEC" -n "$SLURM_NTASKS" '


def job_name_for(path: str | Path) -> str:
    """A job name from a file's stem: characters SLURM and shells dislike become ``_``."""
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", Path(path).stem) or "cosim"


def cosim_version() -> str:
    from . import __version__

    return __version__


def render(opts: JobOptions, *, title: str, plan_lines: Sequence[str], body: str,
           script_name: str = "SCRIPT", command: str = "slurm",
           plan_title: str | None = None) -> str:
    """The script text: header, ``#SBATCH`` lines, site setup, then ``body`` (shell)."""
    opts.check()
    plan = "\n".join(f"#   {line}" for line in plan_lines)
    if plan_title is None:
        plan_title = f"Plan for {opts.ntasks} task{'s' if opts.ntasks > 1 else ''}:"
    plan_comment = f"# {plan_title}\n{plan}\n#" if plan_lines else "#"
    site = [f"module load {m}" for m in opts.modules] + list(opts.setup)
    mpiexec_line = (f"MPIEXEC={shlex.quote(opts.mpiexec_path())}\n"
                    if opts.ntasks > 1 and opts.launcher == "mpiexec" else "")
    return TEMPLATE.substitute(
        title=title, version=cosim_version(),
        date=_dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        script_name=script_name if script_name != "-" else "<this file>", command=command,
        plan_comment=plan_comment, job_name=opts.job_name,
        sbatch_lines="\n".join(opts.sbatch_lines()),
        site_setup=("\n# Site environment (MPI module, virtual environment)\n"
                    + "\n".join(site) + "\n") if site else "",
        python=shlex.quote(str(opts.python)), mpiexec_line=mpiexec_line, body=body)


def run_command(opts: JobOptions, scenario_word: str, extra: Sequence[str] = ()) -> str:
    """The launch line running ``cosim run`` on ``scenario_word`` (already shell-quoted).

    ``exec``: the batch shell becomes the launcher, so that the SIGTERM of ``--signal=B:…``
    reaches it (a shell waiting for a child would die of it and leave the child running).
    """
    tail = "".join(" " + shlex.quote(a) for a in extra)
    return f'exec {opts.launch_prefix()}"$PYTHON" -m cosim run {scenario_word}{tail}'


def scenario_script(scenario_path: str | Path, opts: JobOptions, *, output: str | None = None,
                    overwrite: bool = False, script_name: str = "SCRIPT") -> str:
    """The batch script running one scenario with ``opts.ntasks`` processes.

    The scenario is loaded and validated, and the plan for ``opts.ntasks`` processes is
    made (a CosimError if the scenario cannot run on that many) and written as comments.
    An output the job could not write (it exists without ``overwrite``, another run holds
    it, its folder is read-only) is refused here, before anything is queued.
    """
    from .plan import make_plan
    from .recording import default_output_path
    from .scenario import load_scenario

    opts.check()
    sc = load_scenario(scenario_path, output=output)
    plan = make_plan(sc, opts.ntasks)
    out = sc.simulation.output or default_output_path(sc)
    out_abs = out if out.is_absolute() else Path(opts.chdir) / out
    from .output_guard import check_output_path, input_files
    check_output_path(out_abs, overwrite, input_files(sc))   # now, not after the job queued
    scenario_abs = Path(scenario_path).resolve()
    extra = (["--output", str(output)] if output else []) + (["--overwrite"] if overwrite else [])
    body = ('echo "cosim: job ${SLURM_JOB_ID} on ${SLURM_JOB_NODELIST}: ${SLURM_NTASKS} '
            'task(s), started $(date -Is)"\n'
            + run_command(opts, shlex.quote(str(scenario_abs)), extra) + "\n")
    lines = list(plan.describe()) + [f"output: {out_abs}"]
    return render(opts, title=f"cosim job: {scenario_abs}", plan_lines=lines, body=body,
                  script_name=script_name)


def submit(script: str | Path) -> str:
    """``sbatch --parsable SCRIPT``; returns the job id (CosimError if sbatch fails)."""
    if not shutil.which("sbatch"):
        raise CosimError("sbatch not found: run this on a SLURM login node, or submit the "
                         "written script there", file=str(script))
    try:
        proc = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True,
                              text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise CosimError("sbatch did not answer within 120 s", file=str(script)) from None
    if proc.returncode != 0:
        raise CosimError(f"sbatch failed: {proc.stderr.strip() or proc.stdout.strip()}",
                         file=str(script))
    return proc.stdout.strip().split(";")[0]
