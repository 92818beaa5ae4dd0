-- A database of its own for precoro-assets (shared state and the warehouse catalog), beside Dagster's.
CREATE DATABASE precoro;
