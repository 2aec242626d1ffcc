# The official Airflow image plus this bundle's pinned dependencies (used by docker-compose.yaml).
FROM apache/airflow:3.3.2-python3.11
COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt
