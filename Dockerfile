# Ticketflow's Airflow image: the official Airflow image plus what Ticketflow runs on, at the versions
# pinned in requirements.txt. The development and test tools stay out of it.
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:0 requirements.txt /opt/ticketflow/
RUN pip install --no-cache-dir -r /opt/ticketflow/requirements.txt

# Owned by the airflow user, so the named volume mounted here is writable.
RUN mkdir -p /opt/airflow/auth

ENV PYTHONPATH=/opt/airflow/include \
    TICKETFLOW_ROOT=/opt/airflow
