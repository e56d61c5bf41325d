"""Polling a bucket's listing, for an S3-compatible store that posts no webhooks
(``serve --s3-endpoint URL``): ListObjectsV2 every interval, diffed with the listing
before.  A new key, or a key whose ETag or LastModified changed (a new upload of the same
bytes too, as S3 notifies every PUT), is ``ObjectCreated:Put`` (``...:
CompleteMultipartUpload`` when its ETag is a multipart one, ``md5-N``); a key gone is
``ObjectRemoved:Delete``.  A change between two polls that leaves no trace in the listing
(an object put then deleted) is not seen.

Only changes after the subscription starts are sent, as S3 notifies only after it is
configured: the first listing is the baseline.  The last listing is kept in the state
directory (``s3-listings/BUCKET.json``, with the endpoint it came from) after its changes
are queued, so a restart sends what changed while the server was stopped, and nothing
again; a crash between queueing and keeping sends those changes again (at least once,
as Lambda's asynchronous invocations are).  An endpoint that is down, or a bucket it does
not have, is retried with back-off and reported once a minute, never stopping the server.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec

from ..jsonfile import load_json, save_json
from .reports import Reporter
from .s3 import Change, event_time

_MAX_BACKOFF_S = 30.0
LISTINGS = "s3-listings"


class Seen(msgspec.Struct, array_like=True):
    """What a listing said of one object."""

    etag: str
    modified: float  # LastModified, seconds since the epoch
    size: int


class _Kept(msgspec.Struct):
    endpoint: str
    objects: dict[str, Seen]


def s3_client(endpoint: str, region: str) -> Any:
    import boto3  # the s3 extra's: imported only where buckets are polled
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, region_name=region, config=Config(
        retries={"max_attempts": 2}, connect_timeout=5, read_timeout=30,
        s3={"addressing_style": "path"}))  # a local store has no per-bucket host names


def diff(before: dict[str, Seen], after: dict[str, Seen], bucket: str, region: str,
         now: float) -> list[Change]:
    """The changes from one listing to the next: creations in the order they were made,
    then removals."""
    created = sorted((seen.modified, key) for key, seen in after.items()
                     if before.get(key) != seen)
    changes = [Change("ObjectCreated:CompleteMultipartUpload" if "-" in after[key].etag
                      else "ObjectCreated:Put", bucket, key, region, event_time(modified),
                      after[key].size, after[key].etag)
               for modified, key in created]
    changes += [Change("ObjectRemoved:Delete", bucket, key, region, event_time(now))
                for key in sorted(before.keys() - after.keys())]
    return changes


def forget_others(state_dir: str, buckets: list[str]) -> None:
    """Drop the kept listings of buckets no longer polled: subscribed again later, a
    bucket sends only what changes from then on."""
    directory = os.path.join(state_dir, LISTINGS)
    for name in os.listdir(directory) if os.path.isdir(directory) else ():
        if name.removesuffix(".json") not in buckets:
            os.unlink(os.path.join(directory, name))


class BucketPoller:
    """Polls ``bucket`` at ``endpoint`` every ``interval_s`` in a thread until ``stop``;
    ``deliver(changes)`` queues their invocations."""

    def __init__(self, bucket: str, endpoint: str, region: str, state_dir: str,
                 interval_s: float, deliver: Callable[[list[Change]], object]) -> None:
        self.bucket = bucket
        self.endpoint = endpoint
        self.region = region
        self.interval_s = interval_s
        self._deliver = deliver
        os.makedirs(os.path.join(state_dir, LISTINGS), exist_ok=True)
        self._path = os.path.join(state_dir, LISTINGS, f"{bucket}.json")
        self._client = s3_client(endpoint, region)
        self._stopped = threading.Event()
        self._report = Reporter(f"fastinvoke: S3 bucket {bucket} at {endpoint}")
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"fastinvoke-s3-{bucket}")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        kept = load_json(self._path, _Kept | None, None)
        seen = kept.objects if kept is not None and kept.endpoint == self.endpoint else None
        backoff = 1.0
        while not self._stopped.is_set():
            try:
                listing = self._list()
            except Exception as error:  # noqa: BLE001 - any failure of the store: retried
                self._report(f"cannot list it: {error}; retrying")
                if self._stopped.wait(backoff):
                    return
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
                continue
            backoff = 1.0
            if seen is not None:
                changes = diff(seen, listing, self.bucket, self.region, time.time())
                if changes:
                    self._deliver(changes)
            if listing != seen:  # kept once its changes are queued: sent at least once
                save_json(self._path, _Kept(self.endpoint, listing))
            seen = listing
            if self._stopped.wait(self.interval_s):
                return

    def _list(self) -> dict[str, Seen]:
        listing: dict[str, Seen] = {}
        for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for obj in page.get("Contents", ()):
                listing[obj["Key"]] = Seen(obj["ETag"].strip('"'),
                                           obj["LastModified"].timestamp(), obj["Size"])
        return listing
