#!/usr/bin/env python3
"""Regenerates tests/fixtures/responses.jsonl (and disabled.jsonl) by replaying
tests/fixtures/requests.txt against a real etcd 3.4 (`/usr/bin/etcd --enable-v2`) on
127.0.0.1 with a fresh data dir, then a few /v2 requests against etcd started with
--enable-v2=false.

Each record is one JSON line: {"cmd": the request line, "status", "headers": {lower-case
name: value} for the headers in HEADERS, "body"} (or {"cmd", "line"} for LINE/END).
Values that legitimately differ between two clusters are replaced at recording time by
placeholders the test substitutes back: <CLUSTER_ID>, <MEMBER_ID>, <CLIENT_URL>,
<PEER_URL>. Bodies of /v2/stats/self and /v2/stats/leader (times, rates) are not
recorded (the server owns them). Dates are not recorded.
"""
import http.client, json, os, shutil, socket, subprocess, sys, tempfile, time, urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ETCD = os.environ.get("ETCD", "/usr/bin/etcd")
HEADERS = ["content-type", "content-length", "transfer-encoding", "x-etcd-index",
           "x-raft-index", "x-raft-term", "x-etcd-cluster-id", "allow",
           "x-content-type-options"]


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def start(enable_v2):
    cport, pport = free_port(), free_port()
    data = tempfile.mkdtemp()
    args = [ETCD, "--name", "fixture", "--data-dir", data,
            "--listen-client-urls", f"http://127.0.0.1:{cport}",
            "--advertise-client-urls", f"http://127.0.0.1:{cport}",
            "--listen-peer-urls", f"http://127.0.0.1:{pport}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{pport}",
            "--initial-cluster", f"fixture=http://127.0.0.1:{pport}"]
    if enable_v2:
        args.append("--enable-v2")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            c = http.client.HTTPConnection("127.0.0.1", cport, timeout=2)
            c.request("GET", "/health"); r = c.getresponse(); r.read()
            if r.status == 200:
                break
        except OSError:
            pass
        time.sleep(0.1)
    return proc, data, cport, pport


def stop(proc, data):
    proc.terminate(); proc.wait(); shutil.rmtree(data)


class Recorder:
    def __init__(self, cport, pport):
        self.cport = cport
        self.subst = [(f"http://127.0.0.1:{cport}", "<CLIENT_URL>"),
                      (f"http://127.0.0.1:{pport}", "<PEER_URL>")]
        self.open = {}
        self.out = []

    def norm(self, s):
        for a, b in self.subst:
            s = s.replace(a, b)
        return s

    def send(self, method, path, form):
        c = http.client.HTTPConnection("127.0.0.1", self.cport, timeout=5)
        headers = {}
        if form:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        c.request(method, path, body=form or None, headers=headers)
        return c, c.getresponse()

    def head(self, cmd, r, path):
        hs = {}
        for k, v in r.getheaders():
            k = k.lower()
            if k == "x-etcd-cluster-id":
                self.learn(cluster=v)
            if k in HEADERS:
                hs[k] = self.norm(v)
        return {"cmd": cmd, "status": r.status, "headers": hs}

    def learn(self, cluster=None):
        if cluster and ("c" + cluster) not in [x for x, _ in self.subst]:
            self.subst.append((cluster, "<CLUSTER_ID>"))

    def run(self, lines):
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(" ")
            if parts[0] == "SLEEP":
                time.sleep(float(parts[1])); continue
            if parts[0] == "OPEN":
                _, wid, method, path = parts
                c, r = self.send(method, path, "")
                self.open[wid] = (c, r)
                self.out.append(self.head(line, r, path)); continue
            if parts[0] == "LINE":
                _, r = self.open[parts[1]]
                self.out.append({"cmd": line, "line": self.norm(r.readline().decode())}); continue
            if parts[0] == "END":
                c, r = self.open.pop(parts[1])
                self.out.append({"cmd": line, "line": self.norm(r.read().decode())}); c.close(); continue
            if parts[0] == "CLOSE":
                c, r = self.open.pop(parts[1]); c.sock.shutdown(socket.SHUT_RDWR); c.close(); continue
            method, path = parts[0], parts[1]
            form = parts[2] if len(parts) > 2 else ""
            c, r = self.send(method, path, form)
            body = r.read().decode()
            c.close()
            rec = self.head(line, r, path)
            if path.startswith("/v2/members") and method == "GET" and r.status == 200:
                for m in json.loads(body).get("members", [json.loads(body)]):
                    self.subst.append((m["id"], "<MEMBER_ID>"))
            if path in ("/v2/stats/self", "/v2/stats/leader"):
                rec["headers"].pop("content-length", None)
                body = None
            rec["body"] = None if body is None else self.norm(body)
            self.out.append(rec)
        return self.out


def write(name, recs, version):
    with open(os.path.join(HERE, "tests", "fixtures", name), "w") as f:
        f.write(json.dumps({"generated_by": "fixtures.py", "etcd": version}) + "\n")
        for r in recs:
            f.write(json.dumps(r, sort_keys=True) + "\n")


def main():
    version = subprocess.run([ETCD, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    reqs = open(os.path.join(HERE, "tests", "fixtures", "requests.txt")).read().splitlines()
    proc, data, cport, pport = start(True)
    try:
        write("responses.jsonl", Recorder(cport, pport).run(reqs), version)
    finally:
        stop(proc, data)
    proc, data, cport, pport = start(False)
    try:
        recs = Recorder(cport, pport).run(["GET /v2/keys/foo", "PUT /v2/keys/foo value=x",
                                           "GET /v2/members", "GET /v2/stats/store"])
        write("disabled.jsonl", recs, version)
    finally:
        stop(proc, data)


if __name__ == "__main__":
    sys.exit(main())
