"""An OpenAI-compatible chat server that answers every request after a fixed delay: the student
of scripts/bench/compare-async.sh, standing in for a large model behind an API.

It answers arithmetic questions ("What is 3 + 4?") right for about half of the instructions
(chosen by a hash of the whole prompt, so the teacher's groups have untied rewards and the
update has work to do) and says "I am not sure." otherwise.

    python delayed_student.py --port 0 --delay 4.0   # prints "listening on PORT" when ready
"""

import argparse
import hashlib
import json
import re
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARITH = re.compile(r"(-?\d+)\s*([-+*x\u00d7])\s*(-?\d+)")


def answer(prompt: str) -> str:
    m = None
    for m in ARITH.finditer(prompt):
        pass
    if m is None:
        return "I am not sure."
    a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
    value = a + b if op == "+" else a - b if op == "-" else a * b
    if hashlib.sha256(prompt.encode()).digest()[0] % 2 == 0:
        return f"The answer is {value}."
    return "I am not sure."


def make_handler(delay: float):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def send(self, code: int, body: dict):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path.rstrip("/").endswith("/models"):
                self.send(200, {"object": "list", "data": [{"id": "delayed", "object": "model"}]})
            else:
                self.send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            req = json.loads(self.rfile.read(n) or b"{}")
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self.send(404, {"error": {"message": f"no route {self.path}"}})
                return
            time.sleep(delay)
            prompt = "\n".join(str(m.get("content", "")) for m in req.get("messages", []))
            text = answer(prompt)
            choices = [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
                for i in range(int(req.get("n", 1)))
            ]
            self.send(200, {"object": "chat.completion", "model": "delayed", "choices": choices})

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--delay", type=float, default=4.0)
    args = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.delay))
    srv.daemon_threads = True
    print(f"listening on {srv.server_address[1]}", flush=True)
    sys.stdout.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
