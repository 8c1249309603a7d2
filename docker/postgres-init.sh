#!/bin/bash
# Creates the application database with the password from the environment.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v ticketflow_password="$TICKETFLOW_DB_PASSWORD" -f /docker-entrypoint-initdb.d/ticketflow.sql.in
