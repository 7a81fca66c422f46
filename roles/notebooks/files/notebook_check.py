"""Run a notebook through JupyterHub's API as a lab user; print what its cells printed as JSON.

Installed on the host as dlws-notebook-check (root only: it reads the dlws-verify service's
token from its root-only file). verify/test_notebooks.py runs it. The notebook is written into
the user's home through their server's contents API, opened as a session with the requested
kernel, and each cell is executed over the kernel's websocket, as JupyterLab does.
"""

import argparse
import asyncio
import datetime
import json
import ssl
import sys
import time
import urllib.error
import urllib.request
import uuid

from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect


def request(args, method, path, body=None, ok=(200, 201, 202, 204)):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(args.url + path, data=data, method=method, headers={
        "Authorization": f"token {args.token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=args.ssl, timeout=60) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode(errors="replace")
    if status not in ok:
        raise SystemExit(f"{method} {path}: HTTP {status}: {text[:500]}")
    return status, json.loads(text) if text.strip() else {}


def start_server(args):
    user = args.user
    # A user is in the hub's database after a first login; verify may come first.
    status, _ = request(args, "GET", f"/hub/api/users/{user}", ok=(200, 404))
    if status == 404:
        request(args, "POST", f"/hub/api/users/{user}", {}, ok=(201,))
    request(args, "POST", f"/hub/api/users/{user}/server", {}, ok=(201, 202, 400))
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        _, model = request(args, "GET", f"/hub/api/users/{user}")
        server = (model.get("servers") or {}).get("")
        if server and server.get("ready"):
            return
        if not server and not model.get("pending"):
            raise SystemExit(f"the server of {user} stopped while starting (see the hub's log)")
        time.sleep(1)
    raise SystemExit(f"the server of {user} was not ready within {args.timeout} s")


async def execute(args, kernel_id, session, code):
    scheme = "wss" if args.url.startswith("https") else "ws"
    ws_url = f"{scheme}{args.url[args.url.index(':'):]}/user/{args.user}/api/kernels/" \
             f"{kernel_id}/channels?session_id={session}"
    conn = await websocket_connect(HTTPRequest(
        ws_url, headers={"Authorization": f"token {args.token}"},
        ssl_options=args.ssl if scheme == "wss" else None))
    msg_id = uuid.uuid4().hex
    conn.write_message(json.dumps({
        "header": {"msg_id": msg_id, "username": args.user, "session": session,
                   "msg_type": "execute_request", "version": "5.3",
                   "date": datetime.datetime.now(datetime.timezone.utc).isoformat()},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": True,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
    }))
    outputs, status, idle = [], None, False
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        raw = await asyncio.wait_for(conn.read_message(), deadline - time.monotonic())
        if raw is None:
            break
        msg = json.loads(raw)
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            outputs.append({"output_type": "stream", "name": content["name"],
                            "text": content["text"]})
        elif kind == "error":
            outputs.append({"output_type": "error", "ename": content["ename"],
                            "evalue": content["evalue"], "traceback": content["traceback"]})
        elif kind == "execute_reply":
            status = content["status"]
        elif kind == "status" and content["execution_state"] == "idle":
            idle = True
        # The reply (shell channel) and the idle status (iopub) come in either order.
        if status and idle:
            break
    conn.close()
    return status, outputs


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--cafile", help="the hub's certificate (pinned: nothing else trusted)")
    parser.add_argument("--user", required=True)
    parser.add_argument("--kernel", required=True)
    parser.add_argument("--cell", action="append", required=True, help="a code cell (repeat)")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    with open(args.token_file) as handle:
        args.token = handle.read().strip()
    args.ssl = None
    if args.url.startswith("https"):
        args.ssl = ssl.create_default_context(cafile=args.cafile)
        args.ssl.check_hostname = False  # the certificate itself is the only one trusted
    notebook = {"nbformat": 4, "nbformat_minor": 5,
                "metadata": {"kernelspec": {"name": args.kernel, "language": "python",
                                            "display_name": args.kernel}},
                "cells": [{"cell_type": "code", "id": uuid.uuid4().hex[:8], "metadata": {},
                           "execution_count": None, "source": code, "outputs": []}
                          for code in args.cell]}
    name = "dlws-verify.ipynb"
    start_server(args)
    base = f"/user/{args.user}/api"
    _, kernelspecs = request(args, "GET", f"{base}/kernelspecs")
    request(args, "PUT", f"{base}/contents/{name}",
            {"type": "notebook", "format": "json", "content": notebook})
    _, session = request(args, "POST", f"{base}/sessions",
                         {"path": name, "type": "notebook", "name": name,
                          "kernel": {"name": args.kernel}})
    report = {"user": args.user, "kernel": session["kernel"]["name"], "cells": [],
              "kernelspecs": {name: spec["spec"]["display_name"]
                              for name, spec in kernelspecs["kernelspecs"].items()}}
    try:
        for cell in notebook["cells"]:
            if cell["cell_type"] != "code":
                continue
            status, outputs = asyncio.run(execute(args, session["kernel"]["id"],
                                                  session["id"], "".join(cell["source"])))
            cell["outputs"] = outputs
            report["cells"].append({"status": status, "outputs": outputs})
            if status != "ok":
                break
    finally:
        request(args, "DELETE", f"{base}/sessions/{session['id']}", ok=(204, 404))
        # verify's own scratch file: nothing of it is left in the user's home
        request(args, "DELETE", f"{base}/contents/{name}", ok=(204, 404))
        request(args, "DELETE", f"/hub/api/users/{args.user}/server", {}, ok=(202, 204, 400))
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
