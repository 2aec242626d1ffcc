"""The operator's console: pages of the Airflow UI (a FastAPI app served by the api-server)."""
