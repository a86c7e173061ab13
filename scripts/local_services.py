#!/usr/bin/env python3
"""Real local Redis and a real single-node Kafka (KRaft) for development and tests.

Standard library only. Used three ways:

- ``scripts/services up|down|status|env``: long-lived instances with their state in ``.services/``.
- the ``redis_server`` and ``kafka_broker`` fixtures in ``tests/conftest.py``: fresh instances in
  a pytest temporary folder.
- ``scripts/kafka-topics.sh`` and ``scripts/kafka-consumer-groups.sh``: Kafka's own operator
  tools, through ``python3 scripts/local_services.py tool <main class> ...``.

Redis is Debian's ``redis-server``. Kafka comes from Maven Central: ``scripts/kafka/pom.xml`` is
resolved once into ``~/.cache/ai-pipeline/kafka-<version>/libs`` and the broker runs from there.
Each service keeps its ports, cluster id and data in its data folder, so a stop and a later start
find the same addresses and the same data.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
POM = SCRIPTS / "kafka" / "pom.xml"
TOOLS_LOG4J = SCRIPTS / "kafka" / "tools-log4j2.xml"
KAFKA_VERSION = os.environ.get("AI_PIPELINE_KAFKA_VERSION") or "4.3.1"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ai-pipeline"
HOST = "127.0.0.1"
TOPIC_COMMAND = "org.apache.kafka.tools.TopicCommand"
GROUP_COMMAND = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
# Short-lived tool JVMs: small heap, quick start.
TOOL_JVM = ["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true"]
STATE_FILE = "service.json"
CompletedTool = subprocess.CompletedProcess[str]
PID_FILE = "pid"


class ServiceError(RuntimeError):
    """A service could not be installed, started or stopped; the message says why."""


class RedisError(RuntimeError):
    """Redis answered a command with an error reply."""


def _run(
    command: Sequence[str], timeout: float | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run an argument list we built ourselves (no shell), output captured, no stdin."""
    return subprocess.run(  # noqa: S603
        list(command),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        env=env,
        check=False,
    )


# ---------------------------------------------------------------------------------------------
# Installation


def _privileged() -> list[str]:
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo"):
        return ["sudo", "-n"]
    raise ServiceError("not root and no sudo: cannot install Debian packages")


def apt_install(*packages: str) -> None:
    """Install Debian packages (what scripts/test-services.sh does), quietly."""
    prefix = _privileged()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"installing {' '.join(packages)} from Debian", file=sys.stderr)
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", *packages],
    ):
        result = _run(prefix + command, env=env)
        if result.returncode != 0:
            raise ServiceError(
                f"{' '.join(command)} failed ({result.returncode}):\n"
                + _tail_text(result.stdout + result.stderr)
            )


def _require(tool: str, package: str) -> str:
    found = shutil.which(tool)
    if found is None:
        apt_install(package)
        found = shutil.which(tool)
    if found is None:
        raise ServiceError(f"{tool} is still missing after installing {package}")
    return found


def install_redis() -> str:
    """Path of redis-server, installing Debian's package if it is missing."""
    return _require("redis-server", "redis-server")


def java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    return _require("java", "default-jre-headless")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def kafka_home(version: str = KAFKA_VERSION) -> Path:
    return CACHE / f"kafka-{version}"


def _libs_complete(libs: Path) -> bool:
    manifest = libs / ".complete"
    if not manifest.is_file():
        return False
    names = manifest.read_text().split()
    return bool(names) and all((libs / name).is_file() for name in names)


def install_kafka(version: str = KAFKA_VERSION, quiet: bool = False) -> Path:
    """The folder of Kafka's jars (broker, tools, log4j2), resolved with Maven on first use.

    Skips Maven when the folder is complete (every jar its manifest names is there).
    """
    home = kafka_home(version)
    libs = home / "libs"
    if _libs_complete(libs):
        return libs
    with _locked(home.parent / f"kafka-{version}.lock"):
        if _libs_complete(libs):
            return libs
        mvn = _require("mvn", "maven")
        java()
        partial = home / "libs.partial"
        shutil.rmtree(partial, ignore_errors=True)
        if not quiet:
            print(f"installing Kafka {version} jars from Maven into {libs} (once)", file=sys.stderr)
        started = time.monotonic()
        command = [
            mvn,
            "-B",
            "-q",
            "-Dstyle.color=never",
            "-f",
            str(POM),
            f"-Dkafka.version={version}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={partial}",
        ]
        result = _run(command)
        jars = sorted(p.name for p in partial.glob("*.jar")) if partial.is_dir() else []
        if result.returncode != 0 or not any(j.startswith("kafka_2.13-") for j in jars):
            raise ServiceError(
                f"Maven could not resolve Kafka {version} ({result.returncode}):\n"
                + _tail_text(result.stdout + result.stderr)
            )
        (partial / ".complete").write_text("\n".join(jars) + "\n")
        shutil.rmtree(libs, ignore_errors=True)
        partial.rename(libs)
        if not quiet:
            took = time.monotonic() - started
            print(f"Kafka {version}: {len(jars)} jars in {took:.1f}s", file=sys.stderr)
    return libs


def tool_command(main_class: str, args: Sequence[str], version: str = KAFKA_VERSION) -> list[str]:
    """The java command line that runs one of Kafka's tools quietly from the cached jars."""
    libs = install_kafka(version)
    return [
        java(),
        *TOOL_JVM,
        f"-Dlog4j2.configurationFile={TOOLS_LOG4J.as_uri()}",
        "-cp",
        f"{libs}/*",
        main_class,
        *args,
    ]


# ---------------------------------------------------------------------------------------------
# Helpers


def free_ports(count: int) -> list[int]:
    """Distinct loopback ports that nothing listens on right now."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return True
    return False


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


def _tail_text(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode(errors="replace")
    except OSError:
        return f"({path} is absent)"
    return f"--- {path} (tail) ---\n{_tail_text(text, lines)}"


def _proc_state(pid: int) -> str | None:
    """The process state letter from /proc, None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return "?"
        return "?"
    return stat.rsplit(")", 1)[1].split()[0]


def _alive(pid: int) -> bool:
    state = _proc_state(pid)
    return state is not None and state not in ("Z", "X")


def rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


# ---------------------------------------------------------------------------------------------
# The common process handling


class _Service:
    name = "service"
    ready_timeout = 30.0
    stop_timeout = 60.0

    def __init__(self, data_dir: Path | str) -> None:
        self.data_dir = Path(data_dir).resolve()
        self._proc: subprocess.Popen[bytes] | None = None
        self._state: dict[str, Any] = self._load()

    # state kept in the data folder: ports and the like, so later starts reuse them
    def _load(self) -> dict[str, Any]:
        try:
            loaded: dict[str, Any] = json.loads((self.data_dir / STATE_FILE).read_text())
        except (OSError, ValueError):
            return {}
        return loaded

    def _save(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.data_dir / f"{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(self._state, indent=2) + "\n")
        tmp.replace(self.data_dir / STATE_FILE)

    @property
    def _pid_path(self) -> Path:
        return self.data_dir / PID_FILE

    @property
    def pid(self) -> int | None:
        """The running server's process id, None when it is not running."""
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None
        try:
            pid = int(self._pid_path.read_text().strip())
        except (OSError, ValueError):
            return None
        if not _alive(pid) or not self._ours(pid):
            return None
        return pid

    def _ours(self, pid: int) -> bool:
        """Whether pid is this instance's server (and not a reused pid): it runs in data_dir."""
        try:
            return Path(os.readlink(f"/proc/{pid}/cwd")) == self.data_dir
        except OSError:
            return not Path("/proc/self").exists()

    def is_running(self) -> bool:
        return self.pid is not None

    def rss_bytes(self) -> int | None:
        pid = self.pid
        return None if pid is None else rss_bytes(pid)

    # to be provided by each service
    def _install(self) -> None:
        raise NotImplementedError

    def _prepare(self) -> list[str]:
        """Choose ports on first start, write configuration; the command that runs the server."""
        raise NotImplementedError

    def _ports(self) -> list[int]:
        raise NotImplementedError

    def _probe(self) -> bool:
        raise NotImplementedError

    @property
    def log_path(self) -> Path:
        raise NotImplementedError

    @property
    def address(self) -> str:
        """Where clients connect (Redis: its url; Kafka: its bootstrap)."""
        raise NotImplementedError

    @property
    def _stdout_path(self) -> Path:
        return self.data_dir / f"{self.name}.out"

    def _diagnostics(self) -> str:
        return "\n".join([_tail(self.log_path), _tail(self._stdout_path, 20)])

    def start(self) -> None:
        """Install if needed and start; a no-op when already running. Waits until it serves."""
        self._install()
        if self.is_running():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = self._prepare()
        busy = [port for port in self._ports() if _port_taken(port)]
        if busy:
            raise ServiceError(
                f"{self.name}: port(s) {busy} on {HOST} are taken by another process; "
                f"stop it, or remove {self.data_dir / STATE_FILE} to pick new ports"
            )
        with self._stdout_path.open("ab") as out:
            self._proc = subprocess.Popen(  # noqa: S603 (our own argument list)
                command,
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives `scripts/services up`; no terminal signals
            )
        self._pid_path.write_text(f"{self._proc.pid}\n")
        try:
            self._wait_ready(self._proc)
        except BaseException:  # not ready, interrupted, timed out: leave no stray server
            self.kill()
            raise

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if proc.poll() is not None:
                raise ServiceError(
                    f"{self.name} exited with {proc.returncode} while starting\n"
                    f"{self._diagnostics()}"
                )
            if self._probe():
                return
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"{self.name} was not ready within {self.ready_timeout:.0f}s (killed)\n"
                    f"{self._diagnostics()}"
                )
            time.sleep(0.2)

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is not None and self._proc.pid == pid:
                try:
                    self._proc.wait(timeout=0.1)
                    return True
                except subprocess.TimeoutExpired:
                    pass
            elif not _alive(pid):
                return True
            else:
                time.sleep(0.1)
            if time.monotonic() > deadline:
                return False

    def _signal(self, pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    def stop(self) -> None:
        """Graceful: SIGTERM, then wait until the process has exited (data flushed)."""
        pid = self.pid
        if pid is None:
            self._forget()
            return
        self._signal(pid, signal.SIGTERM)
        if not self._wait_exit(pid, self.stop_timeout):
            self._signal(pid, signal.SIGKILL)
            self._wait_exit(pid, 10)
            self._forget()
            raise ServiceError(
                f"{self.name} did not stop within {self.stop_timeout:.0f}s of SIGTERM (killed)"
            )
        self._forget()

    def kill(self) -> None:
        """Abrupt: SIGKILL, as a crash would (waits until the process is gone)."""
        pid = self.pid
        if pid is not None:
            self._signal(pid, signal.SIGKILL)
            self._wait_exit(pid, 10)
        self._forget()

    def _forget(self) -> None:
        self._proc = None
        self._pid_path.unlink(missing_ok=True)

    def _required_port(self, key: str) -> int:
        port = self._state.get(key)
        if not isinstance(port, int):
            raise ServiceError(f"{self.name} has no {key} yet: start it first")
        return port


# ---------------------------------------------------------------------------------------------
# Redis


def _resp_encode(args: Sequence[str | bytes | int]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _resp_read(stream: Any) -> Any:
    line: bytes = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed by Redis")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body.decode()
    if kind == b"-":
        raise RedisError(body.decode())
    if kind == b":":
        return int(body)
    if kind == b"$":
        size = int(body)
        if size < 0:
            return None
        data: bytes = stream.read(size + 2)
        return data[:-2]
    if kind == b"*":
        size = int(body)
        return None if size < 0 else [_resp_read(stream) for _ in range(size)]
    raise ConnectionError(f"unexpected reply from Redis: {line!r}")


def redis_command(port: int, *args: str | bytes | int, timeout: float = 5.0) -> Any:
    """One command over a raw RESP connection: bulk strings come back as bytes."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(_resp_encode(args))
        with sock.makefile("rb") as stream:
            return _resp_read(stream)


class RedisServer(_Service):
    """redis-server on a free loopback port, AOF on (fsync every second), no RDB snapshots."""

    name = "redis"
    ready_timeout = 30.0
    stop_timeout = 60.0

    @property
    def port(self) -> int:
        return self._required_port("port")

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def address(self) -> str:
        return self.url

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    def command(self, *args: str | bytes | int) -> Any:
        return redis_command(self.port, *args)

    def _install(self) -> None:
        self._binary = install_redis()

    def _ports(self) -> list[int]:
        return [self.port]

    def _prepare(self) -> list[str]:
        if "port" not in self._state:
            (self._state["port"],) = free_ports(1)
            self._save()
        return [
            self._binary,
            "--port", str(self.port),
            "--bind", HOST,
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.log_path),
        ]  # fmt: skip

    def _probe(self) -> bool:
        try:
            return bool(self.command("PING") == "PONG")
        except (OSError, RedisError):  # refused, or still loading its AOF
            return False


# ---------------------------------------------------------------------------------------------
# Kafka


def _cluster_id() -> str:
    """A Kafka Uuid in its string form (url-safe base64, no padding, not starting with '-')."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


BROKER_LOG4J = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="warn" name="kafka-broker">
  <Appenders>
    <RollingFile name="server" fileName={file} filePattern={pattern}>
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <Policies><SizeBasedTriggeringPolicy size="20 MB"/></Policies>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Root level="info"><AppenderRef ref="server"/></Root>
    <Logger name="kafka.request.logger" level="warn"/>
    <Logger name="org.apache.kafka.clients" level="warn"/>
  </Loggers>
</Configuration>
"""


class KafkaBroker(_Service):
    """One Kafka process in KRaft combined mode (broker and controller), node 1, on loopback."""

    name = "kafka"
    ready_timeout = 90.0
    stop_timeout = 120.0

    def __init__(
        self,
        data_dir: Path | str,
        version: str = KAFKA_VERSION,
        heap: Sequence[str] = ("-Xmx512m", "-Xms256m"),
    ) -> None:
        super().__init__(data_dir)
        self.version = str(self._state.get("version") or version)
        self.heap = list(heap)

    @property
    def port(self) -> int:
        return self._required_port("port")

    @property
    def controller_port(self) -> int:
        return self._required_port("controller_port")

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def address(self) -> str:
        return self.bootstrap

    @property
    def libs(self) -> Path:
        return kafka_home(self.version) / "libs"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "kraft-logs"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "logs" / "server.log"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "server.properties"

    def _install(self) -> None:
        install_kafka(self.version)

    def _ports(self) -> list[int]:
        return [self.port, self.controller_port]

    def _prepare(self) -> list[str]:
        if "port" not in self._state:
            port, controller = free_ports(2)
            self._state.update(port=port, controller_port=controller)
            self._state.update(cluster_id=_cluster_id(), version=self.version)
            self._save()
        (self.data_dir / "logs").mkdir(exist_ok=True)
        self._write_config()
        if not (self.log_dir / "meta.properties").is_file():
            self._format()
        return [
            java(),
            *self.heap,
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.data_dir / 'logs'}",
            f"-Dlog4j2.configurationFile={(self.data_dir / 'log4j2.xml').as_uri()}",
            "-cp",
            f"{self.libs}/*",
            "kafka.Kafka",
            str(self.config_path),
        ]

    def _write_config(self) -> None:
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{HOST}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.log_dir),
            "num.partitions": "1",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        lines = [f"# Written by scripts/local_services.py on each start (Kafka {self.version})."]
        lines += [f"{key}={value}" for key, value in settings.items()]
        self.config_path.write_text("\n".join(lines) + "\n")
        logs = self.data_dir / "logs"
        (self.data_dir / "log4j2.xml").write_text(
            BROKER_LOG4J.format(
                file=quoteattr(str(logs / "server.log")),
                pattern=quoteattr(str(logs / "server.log.%i")),
            )
        )
        (self.data_dir / "admin.properties").write_text(
            "request.timeout.ms=5000\ndefault.api.timeout.ms=10000\n"
        )

    def _format(self) -> None:
        command = [
            java(),
            *TOOL_JVM,
            f"-Dlog4j2.configurationFile={TOOLS_LOG4J.as_uri()}",
            "-cp",
            f"{self.libs}/*",
            "kafka.tools.StorageTool",
            "format",
            "--standalone",  # a dynamic controller quorum of this one node
            "-t",
            str(self._state["cluster_id"]),
            "-c",
            str(self.config_path),
        ]
        result = _run(command, timeout=120)
        if result.returncode != 0:
            raise ServiceError(
                f"formatting {self.log_dir} failed ({result.returncode}):\n"
                + _tail_text(result.stdout + result.stderr)
            )

    def tool(self, main_class: str, *args: str, timeout: float = 60) -> CompletedTool:
        """Run one of Kafka's tools (e.g. TOPIC_COMMAND) from this broker's jars, output captured.

        Pass --bootstrap-server self.bootstrap yourself: the arguments go through untouched.
        """
        return _run(tool_command(main_class, args, self.version), timeout=timeout)

    def _probe(self) -> bool:
        if not _accepts(self.port):
            return False
        config = str(self.data_dir / "admin.properties")
        try:
            listed = self.tool(
                TOPIC_COMMAND, "--bootstrap-server", self.bootstrap, "--command-config", config,
                "--list", timeout=30,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return False
        return listed.returncode == 0 and self._grants_producer_ids()

    def _grants_producer_ids(self) -> bool:
        """A fresh or restarted broker lists topics before its coordinators have loaded;
        an idempotent producer (the service's) is then told "coordinator load in progress"
        for a while, and an API process was seen to die (-11) right after that answer. Ready
        means an idempotent produce is acknowledged. Checked in a child process, so such a
        crash cannot take the caller (a test session) down; without confluent-kafka (a bare
        python3) the check is skipped."""
        try:
            result = subprocess.run(  # noqa: S603 (our own argument list)
                [sys.executable, "-c", _IDEMPOTENT_PRODUCE, self.bootstrap],
                capture_output=True,
                timeout=30,
            )
        except subprocess.TimeoutExpired:
            return False
        return result.returncode in (0, _NO_CLIENT)


_NO_CLIENT = 3
_IDEMPOTENT_PRODUCE = f"""
import sys
try:
    from confluent_kafka import KafkaException, Producer
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError:
    sys.exit({_NO_CLIENT})
servers, topic = sys.argv[1], "__ai_pipeline_ready"
admin = AdminClient({{"bootstrap.servers": servers}})
for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
    try:
        future.result(10)
    except KafkaException as exc:
        if "TOPIC_ALREADY_EXISTS" not in str(exc):
            sys.exit(1)
acked = []
producer = Producer({{"bootstrap.servers": servers, "enable.idempotence": True,
                      "message.timeout.ms": 8000}})
producer.produce(topic, b"ready", on_delivery=lambda error, _: acked.append(error is None))
producer.flush(10)
sys.exit(0 if acked == [True] else 1)
"""


# ---------------------------------------------------------------------------------------------
# The `scripts/services` front end


def _default_state_dir() -> Path:
    return Path(os.environ.get("AI_PIPELINE_SERVICES_DIR") or REPO / ".services")


def _services(state_dir: Path) -> tuple[RedisServer, KafkaBroker]:
    return RedisServer(state_dir / "redis"), KafkaBroker(state_dir / "kafka")


def _env_lines(redis: RedisServer, kafka: KafkaBroker) -> list[str]:
    return [f"AI_PIPELINE_BUS=kafka://{kafka.bootstrap}", f"AI_PIPELINE_STATE={redis.url}"]


def _mib(value: int | None) -> str:
    return "?" if value is None else f"{value / 2**20:.0f} MiB"


def cmd_up(state_dir: Path) -> int:
    redis, kafka = _services(state_dir)
    failed = False
    for service in (redis, kafka):
        if service.is_running():
            print(f"{service.name}: already running at {service.address} (pid {service.pid})")
            continue
        started = time.monotonic()
        try:
            service.start()
        except ServiceError as error:
            print(f"{service.name}: failed to start: {error}", file=sys.stderr)
            failed = True
            continue
        took = time.monotonic() - started
        print(f"{service.name}: started at {service.address} (pid {service.pid}) in {took:.1f}s")
    if failed:
        return 1
    print()
    print("\n".join(_env_lines(redis, kafka)))
    return 0


def cmd_down(state_dir: Path) -> int:
    code = 0
    for service in _services(state_dir):
        if not service.is_running():
            print(f"{service.name}: not running")
            continue
        try:
            service.stop()
        except ServiceError as error:
            print(f"{service.name}: {error}", file=sys.stderr)
            code = 1
            continue
        print(f"{service.name}: stopped")
    return code


def cmd_status(state_dir: Path) -> int:
    redis, kafka = _services(state_dir)
    for service in (redis, kafka):
        pid = service.pid
        if pid is None:
            print(f"{service.name}: not running (data {service.data_dir})")
            continue
        detail = f"Kafka {kafka.version}, controller {HOST}:{kafka.controller_port}; "
        print(
            f"{service.name}: running at {service.address} (pid {pid}, "
            f"RSS {_mib(rss_bytes(pid))}; {detail if service is kafka else ''}"
            f"data {service.data_dir})"
        )
    return 0 if redis.is_running() and kafka.is_running() else 3


def cmd_env(state_dir: Path) -> int:
    redis, kafka = _services(state_dir)
    if not (redis.is_running() and kafka.is_running()):
        print("services are not running: scripts/services up", file=sys.stderr)
        return 3
    for line in _env_lines(redis, kafka):
        print(f"export {line}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["tool"]:  # everything after the main class goes to the tool untouched
        if len(args) < 2:
            print("usage: local_services.py tool MAIN_CLASS [ARGS...]", file=sys.stderr)
            return 2
        try:
            command = tool_command(args[1], args[2:])
        except ServiceError as error:
            print(error, file=sys.stderr)
            return 1
        os.execv(command[0], command)  # noqa: S606 (becomes the tool: exit code, signals)
    parser = argparse.ArgumentParser(prog="scripts/services", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--state-dir", type=Path, default=_default_state_dir(), help="default: .services/"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start Redis and Kafka (no-op for what already runs)")
    sub.add_parser("down", help="stop both gracefully")
    sub.add_parser("status", help="what runs where; exit 0 when both run, else 3")
    sub.add_parser("env", help="export lines for AI_PIPELINE_BUS and AI_PIPELINE_STATE")
    sub.add_parser("install-kafka", help="fetch Kafka's jars into the cache (quiet when cached)")
    sub.add_parser("install-redis", help="install Debian's redis-server if missing")
    sub.add_parser("tool", help="run a Kafka tool: tool MAIN_CLASS ARGS...")
    options = parser.parse_args(args)
    try:
        if options.command == "install-kafka":
            install_kafka()
            return 0
        if options.command == "install-redis":
            install_redis()
            return 0
        if options.command == "tool":
            parser.error("tool comes first: local_services.py tool MAIN_CLASS ARGS...")
        handler = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "env": cmd_env}
        return handler[options.command](options.state_dir.resolve())
    except ServiceError as error:
        print(error, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
