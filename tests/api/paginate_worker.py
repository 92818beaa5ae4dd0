"""A separate process that paginates one Precoro list through the shared budget.

Run by the multi-process tests: `python paginate_worker.py URL STATE_DIR SCALE PATH KEY PER_PAGE`, with the
token and email in PRECORO_API_TOKEN / PRECORO_EMAIL. Prints one JSON line: rows, distinct keys, requests spent.
"""

import json
import logging
import os
import sys

from precoro_assets.api.client import PrecoroClient
from precoro_assets.api.quota import QuotaLimits
from precoro_assets.settings import load_state


def main() -> None:
    url, state_dir, scale, path, key, per_page = sys.argv[1:7]
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with PrecoroClient(os.environ["PRECORO_API_TOKEN"], os.environ["PRECORO_EMAIL"], base_url=url,
                       state_dir=state_dir, database_url=load_state().database_url_value, limits=QuotaLimits(time_scale=float(scale)),
                       max_wait_seconds=30) as client:
        keys = [str(row[key]) for row in client.iter_rows(path, key=key, per_page=int(per_page))]
        print(json.dumps({"rows": len(keys), "keys": sorted(set(keys)), "spent": client.spent}))


if __name__ == "__main__":
    main()
