"""The accounting side ("ledger"): what the accounting system says was billed and paid, and where exports go.

`source.py` is the interface any accounting system implements; `files.py` is the default, a drop folder of
CSV/Parquet exports (`file_sink.py`: its export side; `master_data_files.py`: its vendors, products, accounts
and tax rates); `demo.py` writes a demo ledger that fits the bundled simulator's company.
"""
