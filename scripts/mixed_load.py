#!/usr/bin/env python3
"""A short mixed load against `stemedb serve`, for the metrics check: custodial writes,
votes (re-votes included, so some replace), resolves with every built-in lens (cold, from
views, audited), reads, a winner feed, and bad requests of several kinds (401, 404, 400, 413,
415, 422). Standard library only.

    python3 scripts/mixed_load.py http://127.0.0.1:7410 TOKEN [ROUNDS]
"""
import http.client
import json
import sys
import urllib.parse


class Client:
    def __init__(self, base, token):
        url = urllib.parse.urlsplit(base)
        self.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        self.token = token
        self.statuses = {}

    def call(self, method, path, body=None, headers=None, token=True, expect=None):
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {self.token}"
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
        if expect is not None and response.status != expect:
            raise SystemExit(f"{method} {path}: expected {expect}, got {response.status}: {data[:300]!r}")
        if response.getheader("Connection", "").lower() == "close":
            self.conn.close()
        return response.status, data


def main():
    base, token = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    c = Client(base, token)
    subjects = [f"city:{i}" for i in range(5)]
    hashes = []
    for r in range(rounds):
        for s in subjects:
            body = {"subject": s, "predicate": "population", "object": {"integer": 1000 * r + len(s)},
                    "confidence": 0.5 + (r % 5) / 10}
            wait = "?wait=indexed" if r % 4 == 0 else ""
            _, data = c.call("POST", f"/v1/custodial/assertions{wait}", body, expect=200)
            hashes.append(json.loads(data)["hash"])
        # A vote, then a re-vote by the same (custodial) voter: the second replaces the first.
        for h in hashes[-3:]:
            c.call("POST", "/v1/custodial/votes", {"assertion": h, "weight": 1.0 + r}, expect=200)
            c.call("POST", "/v1/custodial/votes?wait=indexed", {"assertion": h, "weight": 2.0 + r}, expect=200)
        for s in subjects:
            for lens in ("consensus", "recency", "confidence"):
                q = urllib.parse.urlencode({"subject": s, "predicate": "population", "lens": lens})
                c.call("GET", f"/v1/resolve?{q}", expect=200)
                c.call("GET", f"/v1/resolve?{q}&max_stale_offsets=1000000", expect=200)
            q = urllib.parse.urlencode({"subject": s, "predicate": "population", "audit": "true"})
            c.call("GET", f"/v1/resolve?{q}", expect=200)
            c.call("GET", f"/v1/assertions?{urllib.parse.urlencode({'subject': s})}&limit=10", expect=200)
        c.call("GET", f"/v1/assertions/{hashes[-1]}", expect=200)
        c.call("GET", f"/v1/assertions/{hashes[-1]}/votes", expect=200)
        # Bad requests: no key, no route, a malformed hash, a wrong content type, an unknown
        # lens (404), a body over the limit.
        c.call("GET", "/v1/resolve?subject=a&predicate=b", token=False, expect=401)
        c.call("GET", "/v1/no-such-route", expect=404)
        c.call("GET", "/v1/assertions/not-a-hash", expect=400)
        c.call("POST", "/v1/custodial/assertions", b"subject=x", {"Content-Type": "text/plain"}, expect=415)
        c.call("GET", "/v1/resolve?subject=a&predicate=b&lens=no-such-lens", expect=404)
        if r % 10 == 0:
            c.call("POST", "/v1/custodial/assertions", b"x" * (2 << 20), {"Content-Type": "application/json"},
                   expect=413)
    # A winner feed: its first event is the current winner.
    q = urllib.parse.urlencode({"subject": subjects[0], "predicate": "population"})
    feed = http.client.HTTPConnection(urllib.parse.urlsplit(base).hostname, urllib.parse.urlsplit(base).port,
                                      timeout=30)
    feed.request("GET", f"/v1/watch?{q}", headers={"Authorization": f"Bearer {token}"})
    response = feed.getresponse()
    if response.status != 200 or not response.readline().startswith(b"event:"):
        raise SystemExit(f"winner feed: status {response.status}")
    feed.close()
    print("mixed load: " + ", ".join(f"{n} x {s}" for s, n in sorted(c.statuses.items())))


if __name__ == "__main__":
    main()
