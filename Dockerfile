# Ticketflow's Airflow image: the official Airflow image plus what Ticketflow runs on, at the
# versions pinned in requirements.txt (development and test tools stay out).
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:0 requirements.txt docker/runtime-requirements.txt /opt/ticketflow/
RUN pip install --no-cache-dir "apache-airflow==3.3.2" -c /opt/ticketflow/requirements.txt \
        -r /opt/ticketflow/runtime-requirements.txt

# Owned by the airflow user, so the named volume mounted here is writable.
RUN mkdir -p /opt/airflow/auth

ENV PYTHONPATH=/opt/airflow/include \
    TICKETFLOW_ROOT=/opt/airflow
