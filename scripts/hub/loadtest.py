#!/usr/bin/env python3
"""Load test for `attnlab hub`: N simulated students at once, each doing what a student does in class.

Per student (all N concurrently, on loopback only):
  1. log in through the hub's login form with the class password (the first login creates the Unix account),
  2. start their server through the hub's REST API and wait until it is ready,
  3. start an attnlab kernel on it, run every code cell of the notebook (quick mode), in order,
  4. stop the server (log out).
A service token (admin over users and servers) lets the driver act for each student after their login.

Reported per student: seconds to log in, to a ready server, to the first result a cell printed (from the start of the
login), to the end of the notebook; failures (an error reply, a timeout, an HTTP error) with their reason; peak memory
(RSS summed over the student's processes, sampled every 0.5 s). Printed as one JSON object on stdout.

usage: loadtest.py --url http://127.0.0.1:PORT --token T --password P --users N --notebook NB.ipynb
                   [--prefix lt] [--timeout 600]
"""
import argparse
import asyncio
import json
import os
import pwd
import subprocess
import time
import urllib.parse
import uuid

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect


def code_cells(path):
    with open(path) as f:
        nb = json.load(f)
    cells = []
    for c in nb["cells"]:
        if c["cell_type"] == "code":
            src = c["source"]
            cells.append(src if isinstance(src, str) else "".join(src))
    return cells


def rss_of_user(name):
    """Resident memory (bytes) of every process the Unix user `name` owns."""
    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        return 0
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.stat("/proc/" + pid).st_uid != uid:
                continue
            with open("/proc/%s/statm" % pid) as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            pass
    return total


class Student:
    def __init__(self, args, name):
        self.args = args
        self.name = name
        self.http = AsyncHTTPClient(force_instance=True, defaults={"request_timeout": args.timeout})
        self.r = {"user": name, "ok": False}
        self.stage = "start"
        self.peak_rss = 0

    async def api(self, method, path, body=None, token=None, base=None):
        headers = {"Authorization": "token " + (token or self.args.token)}
        req = HTTPRequest((base or self.args.url) + path, method=method, headers=headers,
                          body=None if body is None else json.dumps(body),
                          allow_nonstandard_methods=True)
        resp = await self.http.fetch(req)
        return json.loads(resp.body) if resp.body else None

    async def login(self):
        body = urllib.parse.urlencode({"username": self.name, "password": self.args.password})
        req = HTTPRequest(self.args.url + "/hub/login", method="POST", body=body, follow_redirects=False,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            resp = await self.http.fetch(req, raise_error=False)
        except HTTPClientError as e:
            resp = e.response
        if resp is None or resp.code != 302:
            raise RuntimeError("login refused (HTTP %s)" % (resp.code if resp else "none"))

    async def run(self, t0):
        a = self.args
        try:
            self.stage = "login"
            await self.login()
            self.r["login_s"] = time.monotonic() - t0
            self.stage = "starting the server"
            await self.api("POST", "/hub/api/users/%s/server" % self.name, {})
            while True:
                u = await self.api("GET", "/hub/api/users/" + self.name)
                srv = (u.get("servers") or {}).get("")
                if srv and srv.get("ready"):
                    break
                if time.monotonic() - t0 > a.timeout:
                    raise RuntimeError("server not ready after %d s" % a.timeout)
                await asyncio.sleep(0.5)
            self.r["server_ready_s"] = time.monotonic() - t0
            self.stage = "starting a kernel"
            tok = (await self.api("POST", "/hub/api/users/%s/tokens" % self.name,
                                  {"note": "attnlab load test", "expires_in": 3600}))["token"]
            base = a.url + "/user/" + self.name
            kernel = await self.api("POST", "/api/kernels", {"name": "attnlab"}, token=tok, base=base)
            ws_url = base.replace("http", "ws", 1) + "/api/kernels/%s/channels?token=%s" % (kernel["id"], tok)
            # The server answers the websocket once the kernel has replied to kernel_info: under load, tens of seconds.
            self.stage = "connecting to the kernel"
            ws = await websocket_connect(HTTPRequest(ws_url, connect_timeout=a.timeout, request_timeout=a.timeout))
            cells = ["process.env.ATTNLAB_QUICK = '1';"] + code_cells(a.notebook)
            self.stage = "running the notebook"
            for i, src in enumerate(cells):
                await self.execute(ws, src, i, t0)
            ws.close()
            self.r["notebook_s"] = time.monotonic() - t0
            await self.api("DELETE", "/api/kernels/" + kernel["id"], token=tok, base=base)
            self.r["ok"] = True
        except Exception as e:  # reported, never raised: one student's failure must not stop the class
            self.r["error"] = "%s: %s: %s" % (self.stage, type(e).__name__, e)
        finally:
            try:
                await self.api("DELETE", "/hub/api/users/%s/server" % self.name)
            except Exception as e:
                self.r.setdefault("error", "stopping the server: %s" % e)
            self.r["peak_rss_mb"] = round(self.peak_rss / 2**20, 1)

    async def execute(self, ws, src, index, t0):
        msg_id = uuid.uuid4().hex
        ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": self.name,
                       "session": uuid.uuid4().hex, "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": src, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))
        deadline = time.monotonic() + self.args.timeout
        replied = idle = False
        while not (replied and idle):
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("cell %d timed out" % index)
            raw = await asyncio.wait_for(ws.read_message(), left)
            if raw is None:
                raise RuntimeError("kernel connection closed in cell %d" % index)
            m = json.loads(raw)
            if m.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            t = m["header"]["msg_type"]
            if t in ("stream", "display_data", "execute_result") and index > 0 and "first_result_s" not in self.r:
                self.r["first_result_s"] = time.monotonic() - t0
            if t == "error":
                raise RuntimeError("cell %d: %s: %s" % (index, m["content"]["ename"], m["content"]["evalue"]))
            if t == "execute_reply":
                replied = True
                if m["content"]["status"] != "ok":
                    raise RuntimeError("cell %d: status %s" % (index, m["content"]["status"]))
            if t == "status" and m["content"]["execution_state"] == "idle":
                idle = True


async def sample(students, stop):
    while not stop.is_set():
        for s in students:
            s.peak_rss = max(s.peak_rss, rss_of_user(s.name))
        await asyncio.sleep(0.5)


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--users", type=int, required=True)
    p.add_argument("--notebook", required=True)
    p.add_argument("--prefix", default="lt")
    p.add_argument("--timeout", type=float, default=600)
    a = p.parse_args()
    host = urllib.parse.urlparse(a.url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("loadtest.py: --url must be a loopback address, got %s" % host)
    students = [Student(a, "%s%02d" % (a.prefix, i + 1)) for i in range(a.users)]
    stop = asyncio.Event()
    sampler = asyncio.ensure_future(sample(students, stop))
    t0 = time.monotonic()
    await asyncio.gather(*(s.run(t0) for s in students))
    stop.set()
    await sampler
    rows = [s.r for s in students]
    done = [r for r in rows if r["ok"]]
    pick = lambda k: sorted(r[k] for r in done if k in r)
    summary = {
        "users": a.users,
        "failures": len(rows) - len(done),
        "wall_s": round(time.monotonic() - t0, 1),
        "first_result_s_max": round(max(pick("first_result_s"), default=0), 1),
        "notebook_s_median": round(pick("notebook_s")[len(done) // 2], 1) if done else None,
        "notebook_s_max": round(max(pick("notebook_s"), default=0), 1),
        "peak_rss_mb_max": max((r["peak_rss_mb"] for r in rows), default=0),
    }
    for r in rows:
        for k in list(r):
            if k.endswith("_s"):
                r[k] = round(r[k], 1)
    print(json.dumps({"summary": summary, "students": rows}))


if __name__ == "__main__":
    asyncio.run(main())
