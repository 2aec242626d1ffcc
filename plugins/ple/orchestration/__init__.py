"""Airflow glue: the only package that imports airflow.sdk. DAG files call its builders."""
