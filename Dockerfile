# Ticketflow's Airflow image: the official Airflow image plus the pinned requirements.
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:0 requirements.txt /opt/ticketflow/requirements.txt
RUN pip install --no-cache-dir "apache-airflow==3.3.2" -r /opt/ticketflow/requirements.txt

# Owned by the airflow user, so the named volume mounted here is writable.
RUN mkdir -p /opt/airflow/auth

ENV PYTHONPATH=/opt/airflow/include \
    TICKETFLOW_ROOT=/opt/airflow
