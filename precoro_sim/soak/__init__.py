"""The soak (`precoro-assets reliability`): the simulated company lives under injected faults while the sync,
reconciliation and write-back keep up."""
