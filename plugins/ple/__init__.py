"""PLE database toolkit: the CTB reorganization engine, the DOL import and the data-quality audits.

Everything here is plain Python over psycopg; only `ple.orchestration` imports Airflow's task SDK.
"""
