"""Development tooling, kept out of the shipped package `plugins/ple`: the embedded PostgreSQL,
the local Airflow deployment, the demo and the fixture builder (production twins included).

Nothing in `ple` imports this package at module level; the CLI's development commands (`db`,
`fixture`, `airflow`, `demo`) import it when they run. The approval fingerprint hashes only
`plugins/ple` and `include/sql`, so a change here never voids a recorded approval.
"""
