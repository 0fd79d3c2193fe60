"""Real services for tests and benchmarks: a PostgreSQL server and a Kafka broker on 127.0.0.1.

`scripts/install-system.sh` installs them (Debian's PostgreSQL 15, Kafka 4.4.0 from Maven
Central); these helpers start them on free ports in throwaway folders and stop them again.
"""
