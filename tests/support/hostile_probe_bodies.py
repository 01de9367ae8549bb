"""Malformed-input probes for the extension's routes; prints every 5xx / hang."""
import os, json, sys, time, httpx
S = json.load(open(os.environ.get("HOSTILE_STACK", "/tmp/hostile/stack.json")))
U, K = S["base_url"], S["master_key"]
H = {"Authorization": f"Bearer {K}", "content-type": "application/json"}
def post(path, raw, headers=H, timeout=60):
    t = time.monotonic()
    try:
        r = httpx.post(U + path, content=raw if isinstance(raw, bytes) else raw.encode(), headers=headers, timeout=timeout)
        return r.status_code, r.text[:300], time.monotonic() - t
    except Exception as e:
        return -1, repr(e), time.monotonic() - t
cases = [l for l in sys.stdin.read().split("\n") if l.strip()]
for line in cases:
    path, raw = line.split(" ", 1)
    code, text, dt = post(path, raw)
    flag = "!!" if code >= 500 or code < 0 or dt > 30 else "  "
    print(f"{flag} {code} {dt:5.1f}s {path} {raw[:90]} -> {text[:200]}")
