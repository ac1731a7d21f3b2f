#!/usr/bin/env python3
"""Replays the hostile clients of issue 23 (classes 1-6) against a fresh `stemedb serve`, while
an honest client keeps writing, resolving and watching; prints the server's peak memory and
disk use against the configured budgets. Standard library only; Linux (reads /proc).

    cargo build --release --bin stemedb
    python3 scripts/hostile_replay.py [target/release/stemedb] [--scale N]

The attacks, each by a key with the read role only unless said:
  1. audited resolves of long, unique subjects and predicates (the audit store);
  2. resolves with max_stale_ms of many unique pairs (the views);
  3. sockets that ask for the longest audit list and never read the answer;
  4. sockets that declare a 1 MiB body and never send it;
  5. winner feeds whose key is revoked while they are open (they must end within 2 s);
  6. one key opening as many winner feeds as it can.

It fails (exit 1) if an honest request fails, a revoked feed stays open, or the peak resident
memory or the disk use passes its bound: the budgets configured below plus the constants
stated with them.
"""
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

MIB = 1 << 20
# The budgets this run configures, and what they bound.
AUDIT_MAP_BYTES = 64 * MIB        # the audit environment's file never grows past its map
AUDIT_BYTES_MAX = 16 * MIB        # records kept, by their encoded bytes
VIEWS_BYTES_MAX = 16 * MIB        # views kept, by their estimated heap bytes
INFLIGHT_BYTES_MAX = 64 * MIB     # request bodies in flight (the default)
OUTBOUND_BYTES_MAX = 64 * MIB     # answers not yet sent (the default)
STATE_MAP_SLACK_BYTES = 64 * MIB  # what the honest client and the attacks write to the state
# Stated constants: the server's own baseline is measured before the attacks; on top of the
# budgets, RSS may grow by RSS_SLACK_BYTES (allocator slack, thread stacks, LMDB pages of the
# state the attacks read), and the data directory by DISK_SLACK_BYTES (journal segments of the
# honest writes, state pages).
RSS_SLACK_BYTES = 96 * MIB
DISK_SLACK_BYTES = 96 * MIB

CONFIG = f"""
[node]
audit_map_bytes = {AUDIT_MAP_BYTES}
audit_bytes_max = {AUDIT_BYTES_MAX}
views_bytes_max = {VIEWS_BYTES_MAX}

[http]
rate_per_s = 1000000
rate_burst = 1000000
send_timeout_ms = 5000
"""


class Server:
    def __init__(self, binary, work):
        self.work = work
        self.data = os.path.join(work, "data")
        config = os.path.join(work, "config.toml")
        with open(config, "w") as f:
            f.write(CONFIG)
        self.log = open(os.path.join(work, "server.log"), "w+")
        self.proc = subprocess.Popen(
            [binary, "--config", config, "serve", "--data-dir", self.data, "--bind", "127.0.0.1:0"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            self.log.seek(0)
            for line in self.log.read().splitlines():
                if " serving http://" in line:
                    url = line.split("serving ")[1].split()[0]
                    self.base = url[: -len("/v1")]
                    self.host, port = self.base[len("http://"):].split(":")
                    self.port = int(port)
                    with open(os.path.join(self.data, "api", "admin.token")) as t:
                        self.admin = t.read().strip()
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.log.seek(0)
        raise SystemExit("the server did not start:\n" + self.log.read())

    def status(self, field):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        return 0

    def disk(self):
        total = 0
        for root, _, files in os.walk(self.data):
            for name in files:
                try:
                    total += os.stat(os.path.join(root, name)).st_blocks * 512
                except FileNotFoundError:
                    pass
        return total

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def call(server, method, path, token, body=None, timeout=30):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        body = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def make_key(server, roles, agents=()):
    status, data = call(server, "POST", "/v1/keys", server.admin,
                        {"label": "replay", "roles": roles, "agents": list(agents)})
    assert status == 200, (status, data)
    created = json.loads(data)
    return created["token"], created["key"]["id"]


def custodial_agent(server):
    status, data = call(server, "POST", "/v1/agents", server.admin)
    assert status == 200, (status, data)
    return json.loads(data)["agent"]


def q(**params):
    return urllib.parse.urlencode(params)


class Honest(threading.Thread):
    """Writes, resolves (audited) and reads, without pause, until stopped; counts failures."""

    def __init__(self, server, writer, reader):
        super().__init__(daemon=True)
        self.server, self.writer, self.reader = server, writer, reader
        self.stop_flag = threading.Event()
        self.done = 0
        self.failures = []

    def run(self):
        n = 0
        while not self.stop_flag.is_set():
            n += 1
            body = {"subject": "honest", "predicate": f"p{n % 50}", "object": {"integer": n}, "confidence": 0.5}
            for method, path, token, payload in [
                ("POST", "/v1/custodial/assertions", self.writer, body),
                ("GET", "/v1/resolve?" + q(subject="honest", predicate=f"p{n % 50}", audit="true"), self.reader, None),
                ("GET", "/v1/assertions?" + q(subject="honest", limit=10), self.reader, None),
            ]:
                try:
                    status, data = call(self.server, method, path, token, payload)
                except OSError as error:
                    status, data = None, str(error).encode()
                if status != 200:
                    self.failures.append((method, path[:60], status, data[:200]))
                else:
                    self.done += 1


class Sampler(threading.Thread):
    def __init__(self, server):
        super().__init__(daemon=True)
        self.server = server
        self.stop_flag = threading.Event()
        self.peak_anon = self.peak_rss = self.peak_disk = 0

    def run(self):
        while not self.stop_flag.is_set():
            try:
                self.peak_anon = max(self.peak_anon, self.server.status("RssAnon"))
                self.peak_rss = max(self.peak_rss, self.server.status("VmRSS"))
                self.peak_disk = max(self.peak_disk, self.server.disk())
            except (FileNotFoundError, ProcessLookupError):
                return
            time.sleep(0.05)


def attack_audit(server, token, count):
    """Class 1: audited resolves of 1 KiB unique names; past the limit, 422."""
    refused = 0
    for i in range(count):
        subject = f"{i:08}" + "s" * 1016
        predicate = f"{i:08}" + "p" * 1016
        status, _ = call(server, "GET", "/v1/resolve?" + q(subject=subject, predicate=predicate, audit="true"), token)
        assert status == 200, status
    # One byte over the name limit: 422, and nothing stored.
    status, _ = call(server, "GET", "/v1/resolve?" + q(subject="s" * 1025, predicate="p", audit="true"), token)
    refused += status == 422
    return f"{count} audited resolves of 1 KiB names; a 1025-byte name answered {status}"


def attack_views(server, reader, writer, count):
    """Class 2: max_stale resolves of many unique pairs, half of them existing."""
    for i in range(count // 2):
        body = {"subject": f"view{i}", "predicate": "p" * 900, "object": {"text": "x" * 2000}, "confidence": 0.5}
        status, _ = call(server, "POST", "/v1/custodial/assertions", writer, body)
        assert status == 200, status
    for i in range(count):
        path = "/v1/resolve?" + q(subject=f"view{i}", predicate="p" * 900, max_stale_ms=60000)
        status, _ = call(server, "GET", path, reader)
        assert status == 200, status
    return f"{count} resolves with max_stale_ms of unique pairs ({count // 2} exist)"


def raw(server, request):
    sock = socket.create_connection((server.host, server.port), timeout=30)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(request.encode())
    return sock


def attack_unread(server, token, writer, sockets):
    """Class 3: the longest audit list, asked on sockets that never read. The pair has 300
    candidates and 400 audits of them (about 15 KB each): each answer is megabytes."""
    for i in range(300):
        body = {"subject": "wide", "predicate": "p", "object": {"integer": i}, "confidence": (i % 100) / 100}
        status, _ = call(server, "POST", "/v1/custodial/assertions", writer, body)
        assert status == 200, status
    for _ in range(400):
        status, _ = call(server, "GET", "/v1/resolve?" + q(subject="wide", predicate="p", audit="true"), token)
        assert status == 200, status
    path = "/v1/audit?" + q(subject="wide", predicate="p", limit=1000)
    held = [raw(server, f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n")
            for _ in range(sockets)]
    statuses = [sock.recv(12).decode(errors="replace")[9:12] for sock in held]
    counts = {status: statuses.count(status) for status in sorted(set(statuses))}
    return held, f"{sockets} sockets ask for 1,000 audit records of a wide pair and never read: {counts}"


def attack_bodies(server, token, sockets):
    """Class 4: a read key declares 1 MiB bodies and sends none."""
    head = (f"POST /v1/assertions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {MIB}\r\n\r\n")
    held = [raw(server, head) for _ in range(sockets)]
    statuses = []
    for sock in held:
        statuses.append(sock.recv(12).decode(errors="replace")[9:12])
    return held, f"{sockets} sockets of a read key declare 1 MiB bodies: answered {sorted(set(statuses))}"


def open_feed(server, token, subject):
    sock = socket.create_connection((server.host, server.port), timeout=30)
    path = "/v1/watch?" + q(subject=subject, predicate="p")
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    status = sock.recv(12).decode(errors="replace")[9:12]
    return sock, status


def attack_revoked_feeds(server, feeds):
    """Class 5: feeds of a key revoked while they are open must end within 2 s."""
    token, key_id = make_key(server, ["read"])
    socks = [open_feed(server, token, f"revoked{i}")[0] for i in range(feeds)]
    status, _ = call(server, "DELETE", f"/v1/keys/{key_id}", server.admin)
    assert status == 200, status
    revoked = time.time()
    open_after = 0
    for sock in socks:
        # The feed ends with the last chunk of its chunked answer (the connection may stay open
        # for the next request), or with the connection.
        received = b""
        sock.settimeout(max(0.1, revoked + 2.0 - time.time()))
        try:
            while True:
                data = sock.recv(65536)
                received += data
                if not data or received.endswith(b"\r\n0\r\n\r\n"):
                    break
        except socket.timeout:
            open_after += 1
        sock.close()
    return open_after, f"{feeds} feeds of a revoked key: {feeds - open_after} ended within 2 s"


def attack_feed_slots(server, token, other):
    """Class 6: one key opens feeds until refused; another key still gets one."""
    socks, statuses = [], []
    for i in range(2000):
        sock, status = open_feed(server, token, f"slot{i}")
        socks.append(sock)
        statuses.append(status)
        if status != "200":
            break
    sock, other_status = open_feed(server, other, "slot-other")
    socks.append(sock)
    opened = statuses.count("200")
    return socks, other_status, f"one key opened {opened} feeds, then {statuses[-1]}; another key: {other_status}"


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    binary = args[0] if args else "target/release/stemedb"
    scale = 1
    if "--scale" in sys.argv:
        scale = int(sys.argv[sys.argv.index("--scale") + 1])
    work = tempfile.mkdtemp(prefix="stemedb-hostile-")
    server = Server(binary, work)
    failed = []
    try:
        time.sleep(0.5)
        baseline_anon = server.status("RssAnon")
        baseline_rss = server.status("VmRSS")
        agent = custodial_agent(server)
        writer, _ = make_key(server, ["read", "write"], [agent])
        honest_reader, _ = make_key(server, ["read"])
        attacker, _ = make_key(server, ["read"])
        feeder, _ = make_key(server, ["read"])
        sampler = Sampler(server)
        sampler.start()
        honest = Honest(server, writer, honest_reader)
        honest.start()
        started = time.time()
        lines = [attack_audit(server, attacker, 3000 * scale)]
        lines.append(attack_views(server, attacker, writer, 4000 * scale))
        held_unread, line = attack_unread(server, attacker, writer, 20)
        lines.append(line)
        held_bodies, line = attack_bodies(server, attacker, 64)
        lines.append(line)
        still_open, line = attack_revoked_feeds(server, 16)
        lines.append(line)
        if still_open:
            failed.append(f"{still_open} feeds of a revoked key stayed open past 2 s")
        held_feeds, other_status, line = attack_feed_slots(server, feeder, honest_reader)
        lines.append(line)
        if other_status != "200":
            failed.append(f"another key's feed was refused ({other_status})")
        # The honest client goes on a moment with everything held.
        time.sleep(2)
        honest.stop_flag.set()
        honest.join()
        sampler.stop_flag.set()
        sampler.join()
        for sock in held_unread + held_bodies + held_feeds:
            sock.close()
        elapsed = time.time() - started
        for line in lines:
            print("  " + line)
        print(f"honest client: {honest.done} requests succeeded, {len(honest.failures)} failed, in {elapsed:.1f} s")
        for failure in honest.failures[:5]:
            print(f"    failed: {failure}")
        if honest.failures:
            failed.append(f"{len(honest.failures)} honest requests failed")
        anon_bound = baseline_anon + VIEWS_BYTES_MAX + INFLIGHT_BYTES_MAX + OUTBOUND_BYTES_MAX + RSS_SLACK_BYTES
        rss_bound = anon_bound - baseline_anon + baseline_rss + AUDIT_MAP_BYTES + STATE_MAP_SLACK_BYTES
        disk_bound = AUDIT_MAP_BYTES + STATE_MAP_SLACK_BYTES + DISK_SLACK_BYTES
        print(f"peak anonymous memory {sampler.peak_anon / MIB:.1f} MiB (baseline {baseline_anon / MIB:.1f} MiB; "
              f"bound {anon_bound / MIB:.1f} MiB = baseline + views {VIEWS_BYTES_MAX // MIB} + bodies "
              f"{INFLIGHT_BYTES_MAX // MIB} + answers {OUTBOUND_BYTES_MAX // MIB} + {RSS_SLACK_BYTES // MIB} MiB)")
        print(f"peak RSS {sampler.peak_rss / MIB:.1f} MiB (baseline {baseline_rss / MIB:.1f} MiB; bound "
              f"{rss_bound / MIB:.1f} MiB = the above + LMDB pages: audit map {AUDIT_MAP_BYTES // MIB} + "
              f"state {STATE_MAP_SLACK_BYTES // MIB} MiB)")
        print(f"peak disk use {sampler.peak_disk / MIB:.1f} MiB (bound {disk_bound / MIB:.1f} MiB = audit map "
              f"{AUDIT_MAP_BYTES // MIB} + state {STATE_MAP_SLACK_BYTES // MIB} + {DISK_SLACK_BYTES // MIB} MiB)")
        audit_dir = os.path.join(server.data, "audit")
        audit_disk = sum(os.stat(os.path.join(audit_dir, f)).st_blocks * 512 for f in os.listdir(audit_dir))
        print(f"audit store on disk {audit_disk / MIB:.1f} MiB (map {AUDIT_MAP_BYTES // MIB} MiB, "
              f"records kept to {AUDIT_BYTES_MAX // MIB} MiB)")
        if sampler.peak_anon > anon_bound:
            failed.append("anonymous memory passed its bound")
        if sampler.peak_rss > rss_bound:
            failed.append("RSS passed its bound")
        if sampler.peak_disk > disk_bound:
            failed.append("disk use passed its bound")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    if failed:
        print("FAILED: " + "; ".join(failed))
        sys.exit(1)
    print("held: every bound, and every honest request")


if __name__ == "__main__":
    main()
