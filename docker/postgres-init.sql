-- Runs once, when the PostgreSQL volume is created: the application database
-- beside Airflow's metadata database, each with its own owner.
CREATE USER ticketflow WITH PASSWORD :'ticketflow_password';
CREATE DATABASE ticketflow OWNER ticketflow;
