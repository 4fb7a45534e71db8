#!/usr/bin/env python3
"""A fastingest producer in Python with requests.

It POSTs a batch of parcels, waits and tries again on 503 as Retry-After says,
and sends each half of a batch on its own when the server answers 413 (the
body is over MAX_BODY_BYTES). FASTINGEST_URL says where (default
http://127.0.0.1:8080/), FASTINGEST_TOKEN as whom (optional). It exits 1 when
a batch is not accepted.

    FASTINGEST_URL=http://127.0.0.1:8080/ python3 examples/python/send.py
"""
import datetime
import email.utils
import itertools
import os
import sys
import time

import requests

ATTEMPTS = 8  # tries of one batch on 408, 429, 503 or a network error
MAX_WAIT = 30.0  # seconds: the longest wait for one Retry-After
RETRY = {408, 429, 503}


class NotAccepted(Exception):
    """A batch the server refused, or that could not be sent."""


def retry_after(value):
    """Seconds a Retry-After value asks for (seconds or an HTTP date), at most MAX_WAIT; 1 if unreadable."""
    try:
        wait = float(value)
    except (TypeError, ValueError):
        try:
            when = email.utils.parsedate_to_datetime(value)
            wait = (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
        except (TypeError, ValueError):
            wait = 1.0
    return min(max(wait, 0.0), MAX_WAIT)


def send(session, url, parcels):
    """POST parcels as one batch and return how many were accepted.

    A refused batch queued nothing, so sending it again stores nothing twice;
    only a retry after a network error, or after a 503 with ACK=persisted, may:
    readers that must not see duplicates drop them by id.
    """
    for attempt in itertools.count(1):
        try:
            resp = session.post(url, json={"Data": parcels}, timeout=(5, 60))
        except (requests.ConnectionError, requests.Timeout) as err:
            if attempt == ATTEMPTS:
                raise NotAccepted(f"cannot send: {err}") from err
            time.sleep(attempt)
            continue
        if resp.status_code == 202:
            return resp.json()["accepted"]
        if resp.status_code == 413 and len(parcels) > 1:
            print(f"413: splitting {len(parcels)} parcels in two", file=sys.stderr)
            half = len(parcels) // 2
            return send(session, url, parcels[:half]) + send(session, url, parcels[half:])
        if resp.status_code in RETRY and attempt < ATTEMPTS:
            time.sleep(retry_after(resp.headers.get("Retry-After")))
            continue
        raise NotAccepted(f"{resp.status_code} {resp.text.strip()}")


def main():
    url = os.environ.get("FASTINGEST_URL") or "http://127.0.0.1:8080/"
    session = requests.Session()
    token = os.environ.get("FASTINGEST_TOKEN")
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    batch = [{"id": f"python-{n}", "time": now, "data": f"reading {n}"} for n in range(1, 201)]
    try:
        accepted = send(session, url, batch)
    except NotAccepted as err:
        print(f"not accepted: {err}", file=sys.stderr)
        return 1
    print(f"accepted {accepted} of {len(batch)} parcels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
