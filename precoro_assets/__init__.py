"""Dagster assets for Precoro procurement data: ingest, reconcile, write back."""
