"""A separate process that keeps sending requests through the shared budget, as a busy run would.

Run by the multi-process tests: `python traffic_worker.py URL STATE_DIR SCALE RESOURCE KEY COUNT`, with the token
and email in PRECORO_API_TOKEN / PRECORO_EMAIL. It walks RESOURCE's list and fetches every record's detail from
4 threads, over and over, until it has sent COUNT requests. Prints one JSON line: requests spent, 429s met.
"""

import json
import logging
import os
import sys

from precoro_assets.api.client import PrecoroClient
from precoro_assets.api.errors import PrecoroRateLimited
from precoro_assets.api.quota import QuotaLimits
from precoro_assets.settings import load_state


def main() -> None:
    url, state_dir, scale, resource, key, count = sys.argv[1:7]
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    refused = 0
    with PrecoroClient(os.environ["PRECORO_API_TOKEN"], os.environ["PRECORO_EMAIL"], base_url=url,
                       state_dir=state_dir, database_url=load_state().database_url_value, limits=QuotaLimits(time_scale=float(scale)),
                       max_wait_seconds=60, concurrent_requests=4) as client:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=4) as pool:
            while client.spent < int(count):
                keys = [row[key] for row in client.iter_rows(f"/{resource}", key=key, per_page=50)]
                left = max(0, int(count) - client.spent)
                for outcome in pool.map(lambda k: _detail(client, resource, k), keys[:left]):
                    refused += outcome
        print(json.dumps({"spent": client.spent, "refused": refused}))


def _detail(client: PrecoroClient, resource: str, key: object) -> int:
    try:
        client.get_detail(resource, key)
        return 0
    except PrecoroRateLimited:
        return 1


if __name__ == "__main__":
    main()
