"""Reconciliation: Precoro against the accounting ledger (classification, AP matching, tables)."""
