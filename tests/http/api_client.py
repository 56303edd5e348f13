"""The HTTP API with a real client (Python `requests`), as tests/http_api.rs runs it against
`rollcall serve` or a coordinator, the simulated fleet as the world.

    python3 tests/http/api_client.py SUITE...     (suites: native errors openapi reacher sse webhook)

Environment: ROLLCALL_HTTP (base URL), ROLLCALL_TOKEN, ROLLCALL_LIST (the fleet's list, one
address per line), ROLLCALL_TRUTH (its ground truth, JSONL). Every check asserts; the first
failure ends the run with a traceback (exit 1). Nothing here asserts a timing.
"""

import csv
import hashlib
import hmac
import http.server
import io
import json
import os
import sys
import threading
import time

import requests

BASE = os.environ["ROLLCALL_HTTP"].rstrip("/")
TOKEN = os.environ["ROLLCALL_TOKEN"]
LIST = [l for l in open(os.environ["ROLLCALL_LIST"], encoding="utf-8").read().splitlines() if l]
TRUTH = [json.loads(l) for l in open(os.environ["ROLLCALL_TRUTH"], encoding="utf-8") if l.strip()]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REACHABLE = {"deliverable": "safe", "undeliverable": "invalid", "risky": "risky", "unknown": "unknown"}
DEADLINE = 180


def say(*args):
    print("api_client:", *args, flush=True)


def create(addresses, **extra):
    body = {"addresses": addresses, **extra}
    r = requests.post(f"{BASE}/v1/campaigns", json=body, headers=AUTH, timeout=60)
    assert r.status_code == 201, (r.status_code, r.text)
    return r.json()


def wait_final(campaign_id):
    deadline = time.time() + DEADLINE
    while time.time() < deadline:
        p = requests.get(f"{BASE}/v1/campaigns/{campaign_id}", headers=AUTH, timeout=30).json()
        if p["state"] in ("done", "cancelled", "failed"):
            return p
        time.sleep(0.2)
    raise AssertionError(f"campaign {campaign_id} did not finish")


def jsonl(text):
    return [json.loads(l) for l in text.splitlines() if l]


def suite_native():
    # One address now.
    r = requests.post(f"{BASE}/v1/verify", json={"address": LIST[0]}, headers=AUTH, timeout=120)
    assert r.status_code == 200, r.text
    row = r.json()
    truth = TRUTH[0]
    assert row["address"] == truth["address"] and row["status"] == truth["status"], (row, truth)
    for field in ("reason", "mx", "smtp_code", "flags", "is_catch_all", "duplicate", "detail"):
        assert field in row, field

    # A JSON list with a duplicate and an entry that is not an address.
    addresses = LIST + [LIST[0].upper(), "not an address"]
    created = create(addresses, name="native")
    cid = created["campaign_id"]
    assert len(cid) == 27 and cid.isalnum(), cid
    assert (created["accepted"], created["duplicate"], created["invalid"]) == (len(LIST), 1, 1), created
    final = wait_final(cid)
    assert final["state"] == "done" and final["done"] == final["total"] == len(addresses), final
    assert sum(final[s] for s in ("deliverable", "undeliverable", "risky", "unknown")) == len(addresses)

    # Results in input order, JSONL and CSV.
    rows = jsonl(requests.get(f"{BASE}/v1/campaigns/{cid}/results", headers=AUTH, timeout=60).text)
    assert [r["row"] for r in rows] == list(range(len(addresses)))
    by_address = {t["address"]: t for t in TRUTH}
    for r in rows[: len(LIST)]:
        t = by_address[r["address"]]
        if t["deterministic"]:
            assert (r["status"], r["reason"]) == (t["status"], t["reason"]), (r, t)
    assert rows[len(LIST)]["duplicate"] is True
    assert rows[-1]["reason"] == "invalid_syntax"
    r = requests.get(f"{BASE}/v1/campaigns/{cid}/results?format=csv", headers=AUTH, timeout=60)
    assert r.headers["content-type"].startswith("text/csv"), r.headers
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert [int(t["row"]) for t in table] == list(range(len(addresses)))
    assert [t["status"] for t in table] == [r["status"] for r in rows]

    # A CSV body streamed (chunked, split mid-line), header naming the address column.
    def body():
        yield b"name,Email\r\n"
        for i, a in enumerate(LIST):
            line = f"person {i},{a}\r\n".encode()
            yield line[:5]
            yield line[5:]
    r = requests.post(f"{BASE}/v1/campaigns?name=streamed", data=body(),
                      headers={**AUTH, "Content-Type": "text/csv"}, timeout=60)
    assert r.status_code == 201, r.text
    streamed = r.json()
    assert (streamed["accepted"], streamed["invalid"]) == (len(LIST), 0), streamed
    wait_final(streamed["campaign_id"])
    got = jsonl(requests.get(f"{BASE}/v1/campaigns/{streamed['campaign_id']}/results?format=jsonl",
                             headers=AUTH, timeout=60).text)
    assert [g["address"] for g in got] == [r["address"] for r in rows[: len(LIST)]]

    # Results while running, then a cancel.
    big = create(LIST * 40, name="to cancel")["campaign_id"]
    partial = requests.get(f"{BASE}/v1/campaigns/{big}/results", headers=AUTH, timeout=60)
    assert partial.status_code == 200
    assert partial.headers["x-rollcall-campaign-state"] in ("running", "pending", "done")
    cancelled = requests.delete(f"{BASE}/v1/campaigns/{big}", headers=AUTH, timeout=60)
    assert cancelled.status_code == 200 and cancelled.json()["state"] in ("cancelled", "done"), cancelled.text
    assert wait_final(big)["state"] in ("cancelled", "done")
    say("native: verify, JSON and streamed CSV campaigns, results in order, cancel: ok")


def suite_errors():
    cid = create(LIST[:2])["campaign_id"]
    checks = [
        # (method, path, kwargs, status)
        ("post", "/v1/verify", {"data": b'{"address":', "headers": {**AUTH, "Content-Type": "application/json"}}, 400),
        ("post", "/v1/verify", {"json": {"address": "a@b.test", "bogus": 1}, "headers": AUTH}, 400),
        ("post", "/v1/verify", {"json": {"addr": "a@b.test"}, "headers": AUTH}, 400),
        ("post", "/v1/verify", {"data": b"a@b.test", "headers": {**AUTH, "Content-Type": "text/plain"}}, 415),
        ("post", "/v1/campaigns", {"data": b"<list/>", "headers": {**AUTH, "Content-Type": "application/xml"}}, 415),
        ("post", "/v1/campaigns", {"data": b'{"addresses": 5}', "headers": {**AUTH, "Content-Type": "application/json"}}, 400),
        ("post", "/v1/campaigns", {"json": {"addresses": ["a@b.test"], "webhook": {"url": "ftp://x/"}}, "headers": AUTH}, 400),
        ("get", "/v1/campaigns/cdoesnotexist", {"headers": AUTH}, 404),
        ("get", "/v1/campaigns/not%20an%20id", {"headers": AUTH}, 404),
        ("get", f"/v1/campaigns/{cid}/results?format=xml", {"headers": AUTH}, 400),
        ("get", f"/v1/campaigns/{cid}/events", {"headers": {**AUTH, "Last-Event-ID": "99999"}, "params": {"results": "true"}}, 400),
        ("get", "/v1/bulk/cdoesnotexist", {"headers": AUTH}, 404),
        ("get", "/v1/nothing-here", {"headers": AUTH}, 404),
        ("put", "/v1/verify", {"headers": AUTH}, 405),
        # 413: over the JSON body limit the test server runs with (64 KiB).
        ("post", "/v1/campaigns", {"json": {"addresses": ["x" * 100] * 1000}, "headers": AUTH}, 413),
    ]
    # 401 on every protected route, GETs included, without or with a wrong secret.
    for method, path in [("get", f"/v1/campaigns/{cid}"), ("get", f"/v1/campaigns/{cid}/results"),
                         ("get", f"/v1/campaigns/{cid}/events"), ("delete", f"/v1/campaigns/{cid}"),
                         ("get", f"/v1/bulk/{cid}"), ("get", f"/v1/bulk/{cid}/results?format=csv"),
                         ("post", "/v1/verify"), ("post", "/v1/campaigns"), ("post", "/v0/check_email"),
                         ("post", "/v1/check_email"), ("post", "/v1/bulk")]:
        checks.append((method, path, {}, 401))
        checks.append((method, path, {"headers": {"Authorization": "Bearer wrong"}}, 401))
        checks.append((method, path, {"headers": {"x-reacher-secret": "wrong"}}, 401))
    for method, path, kwargs, status in checks:
        r = getattr(requests, method)(f"{BASE}{path}", timeout=30, **kwargs)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/json"), (path, r.headers)
        assert isinstance(r.json()["error"], str) and r.json()["error"], r.text
    # Open routes need no token.
    assert requests.get(f"{BASE}/healthz", timeout=10).json() == {"status": "ok"}
    assert requests.get(f"{BASE}/readyz", timeout=10).status_code == 200
    say(f"errors: {len(checks)} bad requests, each its status and a JSON error: ok")


def suite_openapi():
    from openapi_spec_validator import validate
    doc = requests.get(f"{BASE}/openapi.json", timeout=10).json()
    validate(doc)
    assert doc["openapi"].startswith("3.1"), doc["openapi"]
    # Every documented operation is routed (none answers "no route").
    for path, item in doc["paths"].items():
        for method in item:
            concrete = path.replace("{id}", "cnosuchcampaign").replace("{job_id}", "cnosuchjob")
            r = requests.request(method, f"{BASE}{concrete}", headers=AUTH, timeout=30,
                                 data=b"{}", params={"format": "json"} if "bulk" in path else None)
            assert r.status_code != 405 and "no route" not in r.text, (method, path, r.text)
    say(f"openapi: valid 3.1, {len(doc['paths'])} paths all routed: ok")


def suite_reacher():
    # Exactly Reacher's documented request, the secret in Reacher's header.
    behaviours = set()
    for t in TRUTH:
        r = requests.post(f"{BASE}/v0/check_email", json={"to_email": t["address"]},
                          headers={"Content-Type": "application/json", "x-reacher-secret": TOKEN}, timeout=120)
        assert r.status_code == 200, r.text
        out = r.json()
        mine = out["debug"]["rollcall"]
        assert out["is_reachable"] == REACHABLE[mine["status"]], (t, out)
        if t["deterministic"]:
            assert out["is_reachable"] == REACHABLE[t["status"]], (t, out)
        for key in ("misc", "mx", "smtp", "syntax"):
            assert isinstance(out[key], dict), key
        if t["reason"] == "catch_all":
            assert out["smtp"]["is_catch_all"] is True, out
        behaviours.add(t["behaviour"])
    # v1 answers the same, with unknown fields and Reacher's optional ones ignored.
    r = requests.post(f"{BASE}/v1/check_email", headers={"Authorization": f"Bearer {TOKEN}"},
                      json={"to_email": TRUTH[0]["address"], "from_email": "me@example.org", "hello_name": "x",
                            "proxy": {"host": "127.0.0.1", "port": 1080}, "smtp_port": 25, "some_future_field": True})
    assert r.status_code == 200 and r.json()["is_reachable"] == REACHABLE[TRUTH[0]["status"]], r.text

    # Bulk: a job, its progress, its results as JSON (limit/offset) and as CSV.
    r = requests.post(f"{BASE}/v1/bulk", json={"input_type": "array", "input": LIST},
                      headers={"x-reacher-secret": TOKEN}, timeout=60)
    assert r.status_code == 200, r.text
    job = r.json()["job_id"]
    deadline = time.time() + DEADLINE
    while True:
        p = requests.get(f"{BASE}/v1/bulk/{job}", headers={"x-reacher-secret": TOKEN}, timeout=30).json()
        if p["job_status"] == "Completed":
            break
        assert time.time() < deadline, p
        time.sleep(0.2)
    assert p["total_records"] == p["total_processed"] == len(LIST), p
    assert sum(p["summary"].values()) == len(LIST) and p["created_at"].endswith("Z"), p
    page = requests.get(f"{BASE}/v1/bulk/{job}/results", params={"format": "json", "limit": 5, "offset": 2},
                        headers={"x-reacher-secret": TOKEN}, timeout=30).json()["results"]
    assert [o["input"] for o in page] == LIST[2:7], page
    r = requests.get(f"{BASE}/v1/bulk/{job}/results?format=csv", headers={"x-reacher-secret": TOKEN}, timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), r.text
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert [t["input"] for t in table] == LIST
    assert all(t["is_reachable"] in REACHABLE.values() for t in table)
    say(f"reacher: is_reachable as mapped for {len(TRUTH)} addresses over behaviours {sorted(behaviours)}; bulk JSON and CSV: ok")


def read_events(response, stop_after_results=None):
    """Yields (event, id, data) from an SSE response."""
    event, eid, data = None, None, []
    for raw in response.iter_lines(decode_unicode=True):
        if raw == "":
            if event or data:
                yield event, eid, "\n".join(data)
            event, eid, data = None, None, []
            continue
        if raw.startswith(":"):
            continue
        field, _, value = raw.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            event = value
        elif field == "id":
            eid = value
        elif field == "data":
            data.append(value)


def suite_sse():
    addresses = LIST * 5
    cid = create(addresses, name="sse")["campaign_id"]
    seen = []
    last_id = None
    reconnects = 0
    done = False
    while not done:
        headers = dict(AUTH)
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        with requests.get(f"{BASE}/v1/campaigns/{cid}/events", params={"results": "true"}, headers=headers,
                          stream=True, timeout=60) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            for event, eid, data in read_events(r):
                if event == "results":
                    seen.extend(row["row"] for row in json.loads(data))
                if eid is not None:
                    last_id = eid
                if event == "done":
                    done = True
                    break
                if event == "results" and reconnects < 3:
                    # Drop the connection after each of the first results events and resume.
                    reconnects += 1
                    break
    assert reconnects >= 1, "the stream never had to be resumed"
    assert len(seen) == len(set(seen)), "a result came twice"
    assert sorted(seen) == list(range(len(addresses))), "a result is missing"
    say(f"sse: {len(seen)} results over {reconnects + 1} connections, no gap, no duplicate: ok")


def suite_webhook():
    secret = "whsec-test-0123"
    fail_first = 3
    lock = threading.Lock()
    state = {"attempts": 0, "failed_ids": [], "accepted": {}, "bad_signatures": 0, "completions": 0}

    class Receiver(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            sig = dict(part.split("=", 1) for part in self.headers["rollcall-signature"].split(","))
            expected = hmac.new(secret.encode(), sig["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
            delivery = self.headers["rollcall-webhook-id"]
            with lock:
                state["attempts"] += 1
                if not hmac.compare_digest(expected, sig["v1"]) or sig["t"] != self.headers["rollcall-webhook-timestamp"]:
                    state["bad_signatures"] += 1
                if state["attempts"] <= fail_first:
                    state["failed_ids"].append(delivery)
                    self.send_response(503)
                    self.end_headers()
                    return
                payload = json.loads(body)
                assert payload["delivery_id"] == delivery
                if delivery not in state["accepted"]:
                    state["accepted"][delivery] = payload
                    if payload["type"] == "completed":
                        state["completions"] += 1
            self.send_response(204)
            self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hooks/rollcall?src=test"
    addresses = LIST * 3
    created = create(addresses, name="webhook", webhook={"url": url, "secret": secret})
    assert "webhook_secret" not in created, "a secret the client chose is not echoed"
    wait_final(created["campaign_id"])
    deadline = time.time() + DEADLINE
    while state["completions"] == 0:
        assert time.time() < deadline, state
        time.sleep(0.2)
    time.sleep(2)  # nothing may come after the completion
    server.shutdown()
    assert state["bad_signatures"] == 0, state
    assert len(state["failed_ids"]) == fail_first
    # A failed delivery is retried with the same idempotency id.
    assert len(set(state["failed_ids"])) == 1 and state["failed_ids"][0] in state["accepted"], state["failed_ids"]
    rows = [row["row"] for p in state["accepted"].values() if p["type"] == "results" for row in p["results"]]
    assert sorted(rows) == list(range(len(addresses))), "every result, once"
    completions = [p for p in state["accepted"].values() if p["type"] == "completed"]
    assert len(completions) == 1 and state["completions"] == 1, completions
    assert completions[0]["progress"]["done"] == len(addresses)
    assert list(state["accepted"])[-1].endswith("-completed"), "the completion comes last"
    # A webhook URL to a private address is refused when private targets are not allowed: the
    # test servers allow them (the fleet is on loopback), so this is a unit test in the crate.
    say(f"webhook: {state['attempts']} attempts ({fail_first} failed on purpose), every result once, one completion, all signed: ok")


SUITES = {"native": suite_native, "errors": suite_errors, "openapi": suite_openapi,
          "reacher": suite_reacher, "sse": suite_sse, "webhook": suite_webhook}

if __name__ == "__main__":
    for name in sys.argv[1:]:
        SUITES[name]()
