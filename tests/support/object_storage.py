"""A real S3-compatible server for the tests: moto's server mode (a dev dependency), a process on a localhost port.

DuckDB's httpfs extension talks to it over HTTP exactly as to AWS S3 or MinIO (path-style URLs, signed
requests). One server per pytest session; each test that asks gets a bucket of its own.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

from tests.support.local_servers import free_port, wait_until_serving

_server: subprocess.Popen | None = None
_address = ""
_names = itertools.count()

KEY_ID, SECRET, REGION = "precoro-test-key", "precoro-test-secret-key", "us-east-1"


def endpoint() -> str:
    """host:port of the session's server, a process of its own (started on first use)."""
    global _server, _address
    if _server is None:
        port = free_port()
        _server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # it logs every request
        wait_until_serving(_server, port, "moto's S3 server", timeout_s=30)
        _address = f"127.0.0.1:{port}"
    return _address


def fresh_bucket_settings() -> dict[str, str]:
    """A new empty bucket; the PRECORO_* settings that put the warehouse's files in it."""
    import boto3

    address = endpoint()
    name = f"precoro-{os.getpid()}-{next(_names)}"
    boto3.client("s3", endpoint_url=f"http://{address}", aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                 region_name=REGION).create_bucket(Bucket=name)
    return {"PRECORO_WAREHOUSE_DATA_PATH": f"s3://{name}/warehouse/", "PRECORO_S3_ENDPOINT": address,
            "PRECORO_S3_ACCESS_KEY_ID": KEY_ID, "PRECORO_S3_SECRET_ACCESS_KEY": SECRET, "PRECORO_S3_REGION": REGION,
            "PRECORO_S3_URL_STYLE": "path", "PRECORO_S3_USE_SSL": "0"}


def objects(bucket_url: str) -> list[str]:
    """Keys under an s3://bucket/prefix/ URL."""
    import boto3

    bucket, _, prefix = bucket_url.removeprefix("s3://").partition("/")
    client = boto3.client("s3", endpoint_url=f"http://{endpoint()}", aws_access_key_id=KEY_ID,
                          aws_secret_access_key=SECRET, region_name=REGION)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def stop() -> None:
    global _server
    if _server is not None:
        _server.terminate()
        _server.wait(timeout=30)
        _server = None
