"""The fault suite's components (tests/test_faults_*.py, tests/benchmarks/run_faults.py): a PostgreSQL and
an S3 server that can be stopped and started again on the same port, a small filesystem to fill, a
client that keeps traffic going and counts what it sees, and the figures each fault reports."""
