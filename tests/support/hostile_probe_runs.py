"""Hand-run hunt script (not a test): reads /tmp/hostile/stack.json written by tests.support.hostile_stack."""
import os, json, time, httpx
S = json.load(open(os.environ.get("HOSTILE_STACK", "/tmp/hostile/stack.json")))
U, K = S["base_url"], S["master_key"]
H = {"Authorization": f"Bearer {K}"}
c = httpx.Client(base_url=U, headers=H, timeout=40)
def show(r, what):
    flag = "!!" if r.status_code >= 500 else "  "
    print(flag, r.status_code, what[:110], "->", r.text[:160].replace("\n", " "))
ids = ["", "x", "0"*32, "A"*32, "0"*31, "0"*33, "0"*5000, "%00", "..%2F..%2Fetc", "%ff%fe", "é"*32, "0"*32+"%0a", "null", "-1", "1e9"]
for i in ids:
    for p in ("", "/events", "/cancel", "/approvals"):
        m = "POST" if p in ("/cancel", "/approvals") else "GET"
        try:
            r = c.request(m, f"/agent/runs/{i}{p}", json={"decisions": [{"call_id": "a", "approve": True}]} if p == "/approvals" else None)
            show(r, f"{m} {i[:40]}{p}")
        except Exception as e:
            print("!! EXC", i[:40], p, e)
for q in ["status=x", "status=", "limit=0", "limit=501", "limit=-1", "limit=1e3", "limit=NaN", "limit=" + "9"*400, "limit=1&limit=2",
          "before=x", "before=1:2", "before=nan:" + "0"*32, "before=inf:" + "0"*32, "before=1e999:" + "0"*32, "before=-1:" + "0"*32,
          "before=" + "1"*5000, "before=1796307728.221043:0512663e14ffe35ecb1d6abf1aaed31f", "before=%00", "status=queued&limit=500",
          "before=1.5:zz", "before=1:" + "0"*32 + ":x", "before=%20", "before=1_000:" + "0"*32, "before=0x10:" + "0"*32]:
    show(c.get(f"/agent/runs?{q}"), "GET /agent/runs?" + q[:80])
r = c.post("/agent/run", json={"input": "note", "profile": "careful", "background": True}); rid = r.json()["run_id"]
time.sleep(1.5)
print(c.get(f"/agent/runs/{rid}").json().get("status"))
bodies = ['{}', '[]', 'null', '1', '"x"', '{"decisions":[]}', '{"decisions":{}}', '{"decisions":[{}]}', '{"decisions":[{"call_id":1,"approve":true}]}',
          '{"decisions":[{"call_id":"a","approve":"yes"}]}', '{"decisions":[{"call_id":"a","approve":true,"reason":NaN}]}',
          '{"decisions":[{"call_id":"a","approve":true,"x":1}]}', '{"decisions":[{"call_id":"' + "a"*300 + '","approve":true}]}',
          '{"decisions":[' + ",".join(['{"call_id":"a%d","approve":true}' % i for i in range(300)]) + ']}',
          '{"decisions":[{"call_id":"a","approve":true},{"call_id":"a","approve":false}]}', '{"decisions":[{"call_id":"nope","approve":true}]}',
          '{"decisions":null}', '{"decisions":[null]}', '{"decisions":[{"call_id":"\\ud800","approve":true}]}', '{"decisions":[{"call_id":"a","approve":true}]}x',
          '{"decisions":[{"call_id":"a","approve":true,"reason":"' + "r"*5000 + '"}]}', "{" * 100000, '{"a":' * 200 + '1' + '}' * 200]
for b in bodies:
    show(c.post(f"/agent/runs/{rid}/approvals", content=b, headers={"content-type": "application/json"}), "approvals " + b[:80])
for ct in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset=latin-1", "application/problem+json", "", "application/json\x01"]:
    try:
        show(c.post(f"/agent/runs/{rid}/approvals", content=b'{"decisions":[{"call_id":"a","approve":true}]}', headers={"content-type": ct}), "ct " + repr(ct))
        show(c.post("/agent/run", content=b'{"input":"hi"}', headers={"content-type": ct}), "run ct " + repr(ct))
    except Exception as e:
        print("EXC", ct, e)
st = c.get(f"/agent/runs/{rid}").json()
print(st.get("status"), st.get("pending_approvals"))
