"""The harness precoro-assets' demo, tests and benchmarks stand on: a Precoro simulator, the embedded default
(no token: the bundled simulator), the demo ledger, the ground-truth comparison and the soak.

The product library is `precoro_assets`; it never imports this package.
"""
