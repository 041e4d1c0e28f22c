"""A local Spark Connect server, started and stopped by the process that needs it.

dbt-spark's `session` method runs Spark inside the dbt process unless SPARK_REMOTE names a
Spark Connect server; a server of its own keeps the JVM (its memory, its crashes, its
catalog) out of the Python process and lets several clients (dbt, a check, a test) share
one catalog.  `local_spark_connect(...)` starts one with pyspark's own `spark-submit` (the
Spark that pyspark ships, so no separate Spark install), waits until it accepts
connections and stops it on exit, error or not:

    with local_spark_connect(warehouse_dir, log_file) as url:   # "sc://localhost:PORT"
        os.environ["SPARK_REMOTE"] = url                        # for dbt --target spark
        spark = connect(url)

Needs `java` (17+) on PATH.  pyspark is imported only inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

JAVA_OPTIONS_KEY = "spark.driver.extraJavaOptions"
SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
DEFAULT_MASTER = "local[2]"
DEFAULT_DRIVER_MEMORY = "3g"
# Cold start on 2 cores is ~15 s; a loaded machine may take several times that.
DEFAULT_START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 40
# A port taken between `free_port` and the server's bind is retried with another one.
START_ATTEMPTS = 3
_PR_SET_PDEATHSIG = 1

# Settings every local server gets (the caller's `conf` may override them).
# - shuffle partitions: Spark's default (200) makes every small join and aggregation
#   200 tasks, most of a small build's time;
# - UTC: DuckDB's TIMESTAMP has no time zone, and casts to DATE must cut days in UTC;
# - no web UI, and the gRPC port bound on localhost only, exactly the one chosen
#   (no silent retry on the next port, which the caller would not know).
BASE_CONF: dict[str, str] = {
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.connect.grpc.binding.address": "127.0.0.1",
    "spark.connect.grpc.port.maxRetries": "0",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
}


class SparkConnectStartError(RuntimeError):
    """The server exited or did not accept connections in time; the message ends with
    the tail of its log."""


def spark_submit() -> Path:
    """pyspark's own `spark-submit` (its `bin/` folder): the Spark version that matches
    the installed client, with no SPARK_HOME to set."""
    import pyspark

    path = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    if not path.exists():
        raise FileNotFoundError(f"pyspark ships no spark-submit at {path}")
    return path


def free_port() -> int:
    """A TCP port on localhost that nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on host:port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1.0):
        return True
    return False


def log_tail(log_file: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of the server's log (empty when it wrote none)."""
    try:
        text = log_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _death_signal_setter() -> Callable[[], None] | None:
    """A function for the child to run before it execs: the kernel then sends it SIGTERM
    when the thread that started it exits (Linux's PR_SET_PDEATHSIG, kept across
    spark-submit's exec into java), so a killed test or run never leaves a JVM holding a
    port and gigabytes of memory.  SIGTERM is set back to its default action first: an
    ignored signal stays ignored across exec, so a parent that ignores SIGTERM would
    otherwise leave a server that ignores its death signal.  libc's functions are looked
    up here, in the parent: the child, between fork and exec, only calls them.  None
    where there is no prctl."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl, set_action = libc.prctl, libc.signal
    except (AttributeError, OSError):
        return None
    set_death_signal, sigterm = ctypes.c_int(_PR_SET_PDEATHSIG), ctypes.c_ulong(signal.SIGTERM)
    zero = ctypes.c_ulong(0)
    term, default_action = ctypes.c_int(signal.SIGTERM), ctypes.c_void_p(int(signal.SIG_DFL))

    def set_signal() -> None:
        set_action(term, default_action)
        prctl(set_death_signal, sigterm, zero, zero, zero)

    return set_signal


def server_command(
    port: int,
    warehouse_dir: Path,
    *,
    master: str = DEFAULT_MASTER,
    driver_memory: str = DEFAULT_DRIVER_MEMORY,
    metastore_dir: Path | None = None,
    conf: Mapping[str, str] | None = None,
) -> list[str]:
    """The spark-submit command line of a server on `port`.

    The catalog lives in memory (tables are gone when the server stops: a caller
    registers what it reads) unless `metastore_dir` is given: then a Hive metastore in an
    embedded Derby database there keeps databases and tables from one server to the next.
    """
    settings = dict(BASE_CONF)
    settings["spark.connect.grpc.binding.port"] = str(port)
    settings["spark.sql.warehouse.dir"] = str(Path(warehouse_dir).resolve())
    if metastore_dir is None:
        settings["spark.sql.catalogImplementation"] = "in-memory"
    else:
        derby = Path(metastore_dir).resolve()
        settings["spark.sql.catalogImplementation"] = "hive"
        settings["spark.hadoop.javax.jdo.option.ConnectionURL"] = (
            f"jdbc:derby:;databaseName={derby / 'metastore_db'};create=true"
        )
        settings["spark.driver.extraJavaOptions"] = f"-Dderby.system.home={derby}"
    java_options = " ".join(
        v for v in (settings.get(JAVA_OPTIONS_KEY), (conf or {}).get(JAVA_OPTIONS_KEY)) if v
    )
    settings.update(conf or {})
    if java_options:  # the caller's JVM options join the metastore's, not replace them
        settings[JAVA_OPTIONS_KEY] = java_options
    command = [str(spark_submit()), "--class", SERVER_CLASS, "--master", master]
    command += ["--driver-memory", driver_memory, "--name", f"spark-connect-{port}"]
    for key, value in settings.items():
        command += ["--conf", f"{key}={value}"]
    # The application jar: Spark Connect's server class is in pyspark's own jars, and
    # spark-submit needs a primary resource, which `spark-internal` stands for.
    return [*command, "spark-internal"]


@dataclass
class LocalSparkConnect:
    """A running server: its process, port and log."""

    process: subprocess.Popen[bytes]
    port: int
    log_file: Path

    @property
    def url(self) -> str:
        """The Spark Connect URL clients use (SPARK_REMOTE, `connect`)."""
        return f"sc://localhost:{self.port}"

    def wait_ready(self, timeout_s: float) -> None:
        """Return once the port accepts connections; raise SparkConnectStartError when the
        server exits first or `timeout_s` passes (the server is then stopped)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SparkConnectStartError(
                    f"Spark Connect server exited with code {self.process.returncode} "
                    f"before listening on port {self.port}; log {self.log_file}:\n"
                    + log_tail(self.log_file)
                )
            if port_accepts(self.port):
                return
            time.sleep(0.25)
        self.stop()
        raise SparkConnectStartError(
            f"Spark Connect server did not accept connections on port {self.port} within "
            f"{timeout_s:.0f} s; log {self.log_file}:\n" + log_tail(self.log_file)
        )

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM to the server's process group (the JVM and the Python workers it
        started), then SIGKILL when it has not exited within `timeout_s`."""
        if self.process.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=timeout_s)
                return
            except subprocess.TimeoutExpired:
                continue


def start_spark_connect(
    warehouse_dir: Path,
    log_file: Path,
    *,
    port: int | None = None,
    master: str = DEFAULT_MASTER,
    driver_memory: str = DEFAULT_DRIVER_MEMORY,
    metastore_dir: Path | None = None,
    conf: Mapping[str, str] | None = None,
    timeout_s: float = DEFAULT_START_TIMEOUT_S,
    die_with_parent: bool = True,
) -> LocalSparkConnect:
    """Start a server and wait until it accepts connections; the caller stops it
    (`local_spark_connect` does).

    `port` None: a free port, retried with another one if taken before the server binds
    it.  The server's output (stdout and stderr) goes to `log_file`, appended to, and its
    working folder is the log's folder (where Spark and Derby drop stray files).
    `die_with_parent`: the server is killed when the thread that started it exits (Linux);
    pass False when a short-lived thread starts a server that must outlive it.
    """
    log_file = Path(log_file)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    Path(warehouse_dir).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    # Spark's Python workers run this interpreter (the venv's pyspark); a SPARK_REMOTE of
    # the caller's must not turn the server's own Python side into a client.
    env["PYSPARK_PYTHON"] = sys.executable
    env.pop("SPARK_REMOTE", None)
    env.pop("SPARK_HOME", None)  # pyspark's bin/ finds its own home
    attempts = 1 if port is not None else START_ATTEMPTS
    for attempt in range(1, attempts + 1):
        chosen = port if port is not None else free_port()
        command = server_command(
            chosen,
            Path(warehouse_dir),
            master=master,
            driver_memory=driver_memory,
            metastore_dir=metastore_dir,
            conf=conf,
        )
        with log_file.open("ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=log_file.parent,
                env=env,
                start_new_session=True,  # its own process group: stop() signals all of it
                preexec_fn=_death_signal_setter() if die_with_parent else None,
            )
        server = LocalSparkConnect(process=process, port=chosen, log_file=log_file)
        try:
            server.wait_ready(timeout_s)
            return server
        except SparkConnectStartError as error:
            server.stop()
            taken = "Address already in use" in str(error) or "BindException" in str(error)
            if attempt == attempts or not taken:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


@contextlib.contextmanager
def local_spark_connect(
    warehouse_dir: Path,
    log_file: Path,
    *,
    port: int | None = None,
    master: str = DEFAULT_MASTER,
    driver_memory: str = DEFAULT_DRIVER_MEMORY,
    metastore_dir: Path | None = None,
    conf: Mapping[str, str] | None = None,
    timeout_s: float = DEFAULT_START_TIMEOUT_S,
) -> Iterator[str]:
    """A local Spark Connect server for the `with` block, as its URL
    ("sc://localhost:PORT"); stopped when the block ends, also on an exception.  The
    arguments are `start_spark_connect`'s."""
    server = start_spark_connect(
        warehouse_dir,
        log_file,
        port=port,
        master=master,
        driver_memory=driver_memory,
        metastore_dir=metastore_dir,
        conf=conf,
        timeout_s=timeout_s,
    )
    try:
        yield server.url
    finally:
        server.stop()


def connect(url: str) -> SparkSession:
    """A Spark Connect client session on `url` ("sc://host:port").

    getOrCreate returns the session already open on that URL in this process, if any, so
    callers share one; `session.stop()` closes it."""
    from pyspark.sql import SparkSession

    return SparkSession.builder.remote(url).getOrCreate()
