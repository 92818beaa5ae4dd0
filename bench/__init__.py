"""Benchmarks of precoro-assets against dlt's rest_api source, on the bundled simulator (see bench/README.md)."""
