"""Write-back to Precoro: the outbox of proposed writes (`outbox.py`) and the executor that sends them exactly
once (`executor.py`). Dagster wiring lives in `precoro_assets/defs/writeback.py`.
"""
