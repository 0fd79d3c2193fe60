"""bench_v2's ratio to each well-known V2 server gives that server's own reason for running one
process. Before, the KServe line said "KServe one: MLServer 1.7.1's parallel workers crash with
current uvloop", MLServer's reason, while KServe is simply started with --workers 1."""

from __future__ import annotations

from benchmarks.v2_servers import same_model_line


def test_each_server_line_gives_its_own_reason() -> None:
    kserve = same_model_line("KServe", 0.95, 1)
    assert kserve == ("  throughput abvoc/KServe serving the same model 0.950 (abvoc 1 worker "
                      "process(es), KServe one: started with --workers 1, as MLServer must be)")
    assert "uvloop" in same_model_line("MLServer", 0.89, 1)
