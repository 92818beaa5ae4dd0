"""What processes and hosts share: state in SQLite or PostgreSQL, the file lock, the run launcher."""
