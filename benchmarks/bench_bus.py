"""Events per second, outbox → bus → store, on each transport, beside raw kafka-python.

End to end means: the events are written to the outbox (in transactions of 100, as the API would
accept them), the relay publishes them, and the evaluation worker applies them to the store; the
clock stops when the last one is stored. The events (each with its own ids and time, checked
against its schema) are made before the clock starts, as the anchor's records are: what is timed
is moving them, not making them (the API's making them is `bench_api.py`'s to time). As
`abvoc up` deploys them, the relay (`abvoc relay`) and the worker (`abvoc worker --no-relay`)
are processes of their own, and this one writes, as the API's processes do.
The anchor is kafka-python producing (acks=all) while a consumer in its own process consumes the
same number of same-size records on the same broker, in the same run: its topic (as many
partitions as abvoc's) is created and its group joined before the clock starts, as abvoc's are
(abvoc's worker has stored a warm-up event, sent through the same relay, before its clock).
Each run prints every figure beside that run's anchor; the summary gives the median ratios.

Each side's CPU time per event is measured too, every process that does the work counted (this
one, writing as the API or producing as the anchor; the relay; the worker or the anchor's
consumer; the broker; PostgreSQL's server and its backends). On a machine whose cores other
processes share, events/s moves with their load from run to run, while the CPU spent per event
moves much less: the CPU ratio (the anchor's per event over abvoc's) says what each side costs
whatever the neighbours do.

`--pg-statements` adds, for each run on PostgreSQL, the server's execution time per event
statement by statement (pg_stat_statements, loaded for that run only: it costs a little time).

    python benchmarks/bench_bus.py [--events 20000] [--repeats 3] [--pg-statements]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from benchmarks import pg_statements  # noqa: E402
from benchmarks.bus_summary import ANCHOR, summary  # noqa: E402
from core import events  # noqa: E402
from core.bus.embedded import EmbeddedBus  # noqa: E402
from core.bus.kafka import KafkaBus  # noqa: E402
from core.store import schema  # noqa: E402
from core.store.db import Database  # noqa: E402
from core.store.models import OnlineAggregate, Prediction  # noqa: E402
from core.supervision import freeze_startup_heap  # noqa: E402
from evaluation.aggregation import PREDICTIONS  # noqa: E402
from tests.support.flow import (  # noqa: E402
    count_predictions,
    outbox_batches,
    prediction_event,
    write_batches,
    write_outbox,
)
from tests.support.kafka import KafkaBroker  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402


def _cpu_s(pid: int, tree: bool) -> float:
    """CPU seconds a process has used; with `tree`, its children's too, the live ones' and
    those it has reaped (PostgreSQL's backends come and go)."""
    try:
        root = psutil.Process(pid)
        own = root.cpu_times()
        total = own.user + own.system
        if not tree:
            return total
        total += own.children_user + own.children_system
        for child in root.children(recursive=True):
            try:
                times = child.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total
    except psutil.NoSuchProcess:
        return 0.0


class CpuMeter:
    """CPU seconds each named process spends between `start` and `stop`; those named in
    `trees` with their children (this process's children are parts of their own)."""

    def __init__(self, parts: dict[str, int], trees: tuple[str, ...] = ("postgresql",)) -> None:
        self.parts = parts
        self.trees = trees
        self._at: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        return {name: _cpu_s(pid, name in self.trees) for name, pid in self.parts.items()}

    def start(self) -> None:
        self._at = self._read()

    def stop(self) -> dict[str, float]:
        return {name: seconds - self._at[name] for name, seconds in self._read().items()}


def _per_event(cpu: dict[str, float], n: int) -> str:
    parts = ", ".join(f"{name} {seconds / n * 1e6:.0f}" for name, seconds in cpu.items())
    return f"CPU {sum(cpu.values()) / n * 1e6:.0f} µs per event ({parts})"


def _raw_consumer(bootstrap: str, topic: str, n: int, ready, done) -> None:  # noqa: ANN001
    """The anchor's consumer, in its own process: join the group, then consume n and commit."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=[bootstrap],
        group_id=f"{topic}-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    got = 0
    while not consumer.assignment():  # the group is joined before the clock starts
        got += sum(len(v) for v in consumer.poll(timeout_ms=100).values())
    ready.set()
    while got < n:
        got += sum(len(v) for v in consumer.poll(timeout_ms=500, max_records=5000).values())
        consumer.commit()
    consumer.close()
    done.set()


def raw_kafka(bootstrap: str, n: int, run: int | str, partitions: int,
              broker_pid: int) -> tuple[float, dict[str, float]]:
    """Events/s for kafka-python producing (acks=all) while a consumer process consumes them,
    and the CPU seconds each process spent meanwhile.

    Like abvoc's side: the topic exists and the consumer has joined its group before the clock
    starts, and the clock stops when the consumer has read and committed the last record."""
    topic = f"raw{run}"
    admin = KafkaAdminClient(bootstrap_servers=[bootstrap])
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    admin.close()
    payload = events.encode(prediction_event(0))
    ctx = multiprocessing.get_context("spawn")
    ready, done = ctx.Event(), ctx.Event()
    consumer = ctx.Process(target=_raw_consumer, args=(bootstrap, topic, n, ready, done))
    consumer.start()
    if not ready.wait(60):
        consumer.kill()
        raise RuntimeError("the anchor's consumer did not join its group within 60 s")
    producer = KafkaProducer(
        bootstrap_servers=[bootstrap], acks="all", linger_ms=5, batch_size=256 * 1024
    )
    meter = CpuMeter({"producer": os.getpid(), "consumer": consumer.pid, "broker": broker_pid})
    meter.start()
    start = time.perf_counter()
    for i in range(n):
        producer.send(topic, key=str(i).encode(), value=payload)
    producer.flush()
    if not done.wait(300):
        consumer.kill()
        raise RuntimeError("the anchor's consumer did not read every record within 300 s")
    elapsed = time.perf_counter() - start
    cpu = meter.stop()
    producer.close()
    consumer.join()
    return n / elapsed, cpu


def _part(part: list[str], db_url: str, bus_url: str, prefix: str) -> subprocess.Popen:
    """`abvoc <part>` in a process of its own, as `abvoc up` runs it."""
    env = {
        **os.environ,
        "ABVOC_DATABASE_URL": db_url,
        "ABVOC_BUS_URL": bus_url,
        "ABVOC_TOPIC_PREFIX": prefix,
        "ABVOC_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen([sys.executable, "-m", "app", *part], env=env)


def _stored(db: Database, at_least: int = 1) -> bool:
    """Whether the store holds `at_least` predictions. Polled every 50 ms while the clock runs:
    the worker's own count in the aggregates (a few rows, summed in the transaction that
    stores the predictions) says when counting the table is worth it; counting a growing table
    at every poll cost PostgreSQL about 4 µs per event of the run, work the anchor's side has
    no counterpart for."""
    with db.reading() as s:
        counted = s.scalar(select(func.sum(OnlineAggregate.n))
                           .where(OnlineAggregate.metric == PREDICTIONS)) or 0
        if counted < at_least:
            return False
        return (s.scalar(select(func.count()).select_from(Prediction)) or 0) >= at_least


def _warm_up(db: Database, prefix: str, parts: list[subprocess.Popen]) -> None:
    """Send one event end to end before the clock starts: once it is stored, the worker has
    joined its group and holds the partitions, and the relay's producer is connected, as the
    anchor's consumer and producer are before its clock."""
    write_outbox(db, 1, prefix, run=f"{prefix}-warm-up")
    deadline = time.monotonic() + 120
    while not _stored(db):
        if any(p.poll() is not None for p in parts) or time.monotonic() > deadline:
            raise RuntimeError("the relay and worker did not store the warm-up event within "
                               "120 s")
        time.sleep(0.05)


def end_to_end(
    db_url: str, transport: str, bootstrap: str, n: int, run: int | str, partitions: int,
    servers: dict[str, int] | None = None, pg_profile: bool = False,
) -> tuple[float, dict[str, float], list[str]]:
    """Events/s outbox → bus → store, the CPU seconds each process spent meanwhile (this one,
    the relay, the worker, and the `servers` given by name and pid), and with `pg_profile` the
    PostgreSQL statements' time per event (see pg_statements)."""
    db = Database(db_url)
    schema.upgrade(db)
    bus = KafkaBus([bootstrap], partitions) if transport == "kafka" else EmbeddedBus(db)
    prefix = f"bench{run}{transport}{db.dialect}"
    bus.ensure_topics(events.topics(prefix))
    bus_url = f"kafka://{bootstrap}" if transport == "kafka" else "embedded://"
    parts = [_part(["relay"], db_url, bus_url, prefix),
             _part(["worker", "--no-relay"], db_url, bus_url, prefix)]
    try:
        _warm_up(db, prefix, parts)
        if pg_profile:
            pg_statements.reset(db_url)
        batches = list(outbox_batches(n, prefix))  # made ahead, as the anchor's records are
        meter = CpuMeter({"writer": os.getpid(), "relay": parts[0].pid,
                          "worker": parts[1].pid, **(servers or {})})
        meter.start()
        start = time.perf_counter()
        write_batches(db, batches, prefix)
        while not _stored(db, n + 1):  # counts rows: the distinct check runs after the clock
            if any(p.poll() is not None for p in parts):
                raise RuntimeError("the relay or the worker died during the run")
            time.sleep(0.05)
        elapsed = time.perf_counter() - start
        cpu = meter.stop()
        statements = pg_statements.report(db_url, n) if pg_profile else []
    finally:
        for part in parts:
            part.terminate()
        for part in parts:
            part.wait(timeout=30)
    assert count_predictions(db) == (n + 1, n + 1)
    db.dispose()
    return n / elapsed, cpu, statements


def warm_up(broker: KafkaBroker, tmp: Path, n: int, partitions: int) -> None:
    """One untimed run of each side's Kafka path on the broker the timed runs share.

    The broker is a JVM: the first thousands of requests of each kind run interpreted while its
    JIT compilers (threads of the broker process, so counted in its CPU) compile them, and the
    two sides send different kinds (kafka-python's older protocol versions; librdkafka's
    idempotent producer and its consumer's requests). In a first run the compilers took about as
    much CPU as the broker's request handlers; warmed, every timed run meets the broker in the
    same state, whichever side goes first."""
    print("warming the broker: one untimed run of each side ...", flush=True)
    raw_kafka(broker.bootstrap, n, "warm", partitions, broker.proc.pid)
    end_to_end(f"sqlite:///{tmp / 'bench-warm.db'}", "kafka", broker.bootstrap, n, "warm",
               partitions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=3, help="as ABVOC_BUS_PARTITIONS")
    parser.add_argument("--no-warm-up", dest="warm_up", action="store_false",
                        help="skip the untimed run of each side that warms the broker first")
    parser.add_argument("--pg-statements", action="store_true",
                        help="PostgreSQL's time per event by statement (pg_stat_statements)")
    args = parser.parse_args()
    n = args.events
    print(f"event size: {len(events.encode(prediction_event(0)))} bytes; {n} events per run")
    print("starting Kafka broker and PostgreSQL ...", flush=True)
    preload = (pg_statements.MODULE,) if args.pg_statements else ()
    broker, pg = KafkaBroker().start(), PostgresServer(preload).start()
    freeze_startup_heap()  # this process stands for the API, which does it at start
    tmp = Path(broker.workdir)
    rates: dict[str, list[float]] = {}
    ratios: dict[str, list[float]] = {}
    cpus: dict[str, list[float]] = {}  # µs per event
    try:
        if args.warm_up:
            warm_up(broker, tmp, n, args.partitions)
        for run in range(args.repeats):
            print(f"run {run + 1}/{args.repeats}", flush=True)
            anchor_rate, cpu = raw_kafka(broker.bootstrap, n, run, args.partitions,
                                         broker.proc.pid)
            rates.setdefault(ANCHOR, []).append(anchor_rate)
            cpus.setdefault(ANCHOR, []).append(sum(cpu.values()) / n * 1e6)
            print(f"  {ANCHOR:58s} {anchor_rate:10,.0f} events/s\n    {_per_event(cpu, n)}",
                  flush=True)
            for transport in ("kafka", "embedded"):
                for store in ("sqlite", "postgresql"):
                    url = (
                        f"sqlite:///{tmp / f'bench-{transport}-{run}.db'}"
                        if store == "sqlite"
                        else pg.create_database()
                    )
                    servers = {"broker": broker.proc.pid} if transport == "kafka" else {}
                    if store == "postgresql":
                        servers["postgresql"] = pg.pid
                    rate, cpu, statements = end_to_end(
                        url, transport, broker.bootstrap, n, run, args.partitions, servers,
                        pg_profile=args.pg_statements and store == "postgresql")
                    name = f"abvoc {transport} bus + {store} store, outbox→bus→store"
                    rates.setdefault(name, []).append(rate)
                    ratios.setdefault(name, []).append(rate / anchor_rate)
                    cpus.setdefault(name, []).append(sum(cpu.values()) / n * 1e6)
                    print(f"  {name:58s} {rate:10,.0f} events/s  ratio to this run's anchor "
                          f"{rate / anchor_rate:.2f}\n    {_per_event(cpu, n)}", flush=True)
                    for line in statements:
                        print(f"      {line}", flush=True)
    finally:
        broker.discard()
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n".join(summary(args.repeats, n, rates, ratios, cpus)))


if __name__ == "__main__":
    main()
