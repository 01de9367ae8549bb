"""Huge bodies: RSS peak of the proxy (VmHWM, reset via clear_refs) and the answer, per case."""
import os, json, socket, sys, time
S = json.load(open(os.environ.get("HOSTILE_STACK", "/tmp/hostile/stack.json")))
host, port = S["base_url"].split("//")[1].split(":"); port = int(port)
pid = S["pid"]
def hwm():
    return int([l for l in open(f"/proc/{pid}/status") if l.startswith("VmHWM")][0].split()[1]) // 1024
def rss():
    return int([l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0].split()[1]) // 1024
def reset():
    open(f"/proc/{pid}/clear_refs", "w").write("5")
def send(path, head, chunks, chunked):
    s = socket.create_connection((host, port)); s.settimeout(60)
    hdr = f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {S['master_key']}\r\nContent-Type: application/json\r\n"
    total = len(head) + sum(len(c) for c in chunks) if not chunked else None
    hdr += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {total}\r\n\r\n"
    t = time.monotonic()
    try:
        s.sendall(hdr.encode())
        for piece in [head, *chunks]:
            s.sendall((f"{len(piece):x}\r\n".encode() + piece + b"\r\n") if chunked else piece)
        if chunked: s.sendall(b"0\r\n\r\n")
    except OSError:
        pass
    try:
        data = s.recv(600)
    except OSError as e:
        data = repr(e).encode()
    return data.split(b"\r\n")[0].decode(errors="replace"), data[-200:].decode(errors="replace"), time.monotonic() - t
MB = 1 << 20
cases = {
 "chat mini-agent 31MB string": ("/v1/chat/completions", b'{"model":"mini-agent/mini","messages":[{"role":"user","content":"', [b"a" * MB] * 31 + [b'"}]}'], False),
 "chat mini-agent 300MB chunked": ("/v1/chat/completions", b'{"model":"mini-agent/mini","messages":[{"role":"user","content":"', [b"a" * MB] * 300, True),
 "chat mini-agent 300MB declared": ("/v1/chat/completions", b'{"model":"mini-agent/mini","messages":[{"role":"user","content":"', [b"a" * MB] * 300, False),
 "chat mini-agent 1M elements (2MB)": ("/v1/chat/completions", b'{"model":"mini-agent/mini","messages":[{"role":"user","content":"hi"}],"metadata":{"a":[', [b"0," * 499_000, b'0]}}'], False),
 "agent/run 300MB chunked": ("/agent/run", b'{"input":"', [b"a" * MB] * 300, True),
 "approvals 300MB chunked": ("/agent/runs/" + "0" * 32 + "/approvals", b'{"decisions":"', [b"a" * MB] * 300, True),
 "chat codex 31MB string": ("/v1/chat/completions", b'{"model":"codex-ok","messages":[{"role":"user","content":"', [b"a" * MB] * 31 + [b'"}]}'], False),
}
for name, (path, head, chunks, chunked) in cases.items():
    if len(sys.argv) > 1 and sys.argv[1] not in name: continue
    time.sleep(2); base = rss(); reset()
    status, tail, dt = send(path, head, chunks, chunked)
    time.sleep(1)
    print(f"{name:40s} {status:30s} {dt:5.1f}s rss {base}->{rss()} MB peak {hwm()} MB | {tail[-160:]!r}", flush=True)
