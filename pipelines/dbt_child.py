"""`referral-segments-dbt`: dbt, bound to the life of the nightly run that starts it.

dagster-dbt runs this console script as its dbt executable.  Given `--bind-to-parent PID`
(the run's process, pipelines/dbt.py), it asks the Linux kernel to kill it when its parent
dies (PR_SET_PDEATHSIG, which survives the exec into dbt), so a run killed mid-build never
leaves a dbt writing to the pipeline's store while the next run works on it.  (Where a
child cannot be bound, an orphaned dbt keeps DuckDB's lock on the store, and the next run
fails at start with "held by another process" instead of meeting it.)
A run killed before the binding took effect would never be signalled: the launcher then
sees another parent than PID and exits without starting dbt.

The dbt it runs is the one installed next to its own interpreter (the script's shebang
names the venv's Python), so it needs neither PATH nor an environment variable.  Standard
library only, no subprocess: it starts before every dbt command.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

PARENT_OPTION = "--bind-to-parent"
# The launcher's own too: the Spark Connect URL of a stage on Spark, given to dbt-spark's
# session method as SPARK_REMOTE in dbt's environment only (profiles.yml, target spark).
SPARK_REMOTE_OPTION = "--spark-remote"
# The launcher's too: the folder dbt runs in, the run's store's.  The profile names the store
# by its file name, relative to it, so dbt's profile (and so its partial parsing, which a
# changed profile or var discards: ~7 s a stage) is the same for every warehouse and night.
WORKDIR_OPTION = "--workdir"
_PR_SET_PDEATHSIG = 1
_PR_GET_PDEATHSIG = 2


def venv_dbt() -> str:
    """The dbt of this interpreter's environment."""
    return str(Path(sysconfig.get_path("scripts")) / "dbt")


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


@functools.cache
def dies_with_parent() -> bool:
    """Whether a child can be bound to its parent here (Linux's prctl).  PR_GET_PDEATHSIG
    changes nothing in the asking process."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return _libc().prctl(_PR_GET_PDEATHSIG, ctypes.byref(ctypes.c_int()), 0, 0, 0) == 0
    except (AttributeError, OSError):
        return False


def split_option(args: Sequence[str], option: str) -> tuple[str | None, list[str]]:
    """The value given with one of the launcher's options, and the other arguments."""
    rest = list(args)
    if option not in rest:
        return None, rest
    i = rest.index(option)
    value = rest[i + 1]
    del rest[i : i + 2]
    return value, rest


def split_parent(args: Sequence[str]) -> tuple[int | None, list[str]]:
    """The pid given with --bind-to-parent, and the arguments meant for dbt."""
    parent, rest = split_option(args, PARENT_OPTION)
    return (int(parent) if parent is not None else None), rest


def split_spark_remote(args: Sequence[str]) -> tuple[str | None, list[str]]:
    """The URL given with --spark-remote, and the other arguments."""
    return split_option(args, SPARK_REMOTE_OPTION)


def exec_bound(program: str, args: Sequence[str], parent: int | None) -> NoReturn:
    """Replace this process (same pid) with `program`, first bound to `parent` if given."""
    if parent is not None and dies_with_parent():
        if _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # it died before the binding: no signal would come
            sys.stderr.write(f"{PARENT_OPTION} {parent}: that process is gone; not starting\n")
            raise SystemExit(1)
    os.execv(program, [program, *args])


def main() -> NoReturn:
    parent, args = split_parent(sys.argv[1:])
    spark_remote, args = split_spark_remote(args)
    workdir, args = split_option(args, WORKDIR_OPTION)
    if workdir:
        # dbt finds its project through DBT_PROJECT_DIR, which dagster-dbt sets.
        os.environ.setdefault("DBT_PROJECT_DIR", os.getcwd())
        os.chdir(workdir)
    if spark_remote:
        os.environ["SPARK_REMOTE"] = spark_remote
        # dbt-spark's session method asks a Connect client for server settings (Hive
        # support, memory) it cannot set: warnings per connection, nothing wrong.
        os.environ["PYTHONWARNINGS"] = "ignore:Failed to set spark.:UserWarning"
    exec_bound(venv_dbt(), args, parent)


if __name__ == "__main__":
    main()
