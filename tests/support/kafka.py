"""A one-node Apache Kafka broker (KRaft: broker and controller in one JVM) on 127.0.0.1."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from tests.support.ports import free_port, wait_for_port

KAFKA_HOME = Path(
    os.environ.get("ABVOC_KAFKA_HOME", Path.home() / ".cache" / "abvoc" / "kafka-4.4.0")
)


class KafkaBroker:
    """Start, kill and restart a real broker; the data folder and ports survive restarts."""

    def __init__(self, workdir: Path | None = None, settings: dict[str, str] | None = None
                 ) -> None:
        lib = KAFKA_HOME / "lib"
        if not any(lib.glob("kafka_2.13-*.jar")):
            raise RuntimeError(
                f"Kafka jars not found in {lib}: run scripts/install-system.sh first"
            )
        self.classpath = str(lib / "*")
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="abvoc-kafka-"))
        self.port = free_port()
        self.controller_port = free_port()
        self.proc: subprocess.Popen | None = None
        self.config = self.workdir / "server.properties"
        self.log_file = self.workdir / "broker.log"
        self._write_config(settings or {})
        self._format()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def _write_config(self, overrides: dict[str, str]) -> None:
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.workdir / "data"),
            "num.partitions": "3",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "3",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            **overrides,
        }
        self.config.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))

    def _java(self, *args: str) -> list[str]:
        return [
            "java",
            "-Xms256m",
            "-Xmx768m",
            "-XX:+UseG1GC",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp",
            self.classpath,
            *args,
        ]

    def _format(self) -> None:
        cluster_id = "-"
        while cluster_id.startswith("-"):  # the tool would read "-6v9..." as an option (1 in 64)
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        subprocess.run(
            self._java(
                "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.config)
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self, timeout_s: float = 90) -> KafkaBroker:
        if self.proc is not None and self.proc.poll() is None:
            return self
        log = open(self.log_file, "ab")  # noqa: SIM115 - the broker owns it while it runs
        self.proc = subprocess.Popen(
            self._java("kafka.Kafka", str(self.config)),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            wait_for_port(self.port, timeout_s, self.proc)
        except Exception as exc:
            tail = self.log_file.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"Kafka broker did not start: {exc}\n{tail}") from exc
        return self

    def kill(self) -> None:
        """Stop the broker abruptly (SIGKILL), as a crash or outage would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def discard(self) -> None:
        """Kill the broker and remove its folder, so test runs leave nothing in the temp dir."""
        self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self, down_s: float = 0.0) -> None:
        self.kill()
        time.sleep(down_s)
        self.start()
