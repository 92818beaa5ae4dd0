"""The accounting side ("ledger"): what the accounting system says was billed and paid, and where exports go.

`source.py` is the interface any accounting system implements; `files.py` is the default, a drop folder of
CSV/Parquet exports; `demo.py` writes a demo ledger that fits the bundled simulator's company.
"""
