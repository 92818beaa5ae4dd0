"""What processes and hosts share: state in SQLite or PostgreSQL, the file lock, the run launcher.

run_launcher.py is the one module outside defs/ (and the code location) that imports dagster: it is a Dagster
instance component (dagster.yaml names it), not asset wiring, and it watches runs and pool slots of the Dagster
instance itself. precoro_assets.run_launcher re-exports its launcher for dagster.yaml files already deployed.
"""
