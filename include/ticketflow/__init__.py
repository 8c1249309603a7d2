"""Ticketflow: service-desk automations on Apache Airflow, backed by PostgreSQL."""
