"""The tutorial's Flask app: the backend that nginx (or this proxy) sits in front of.

Run by TutorialTest with Debian's python3-flask (/usr/bin/python3). It listens on a free
port of 127.0.0.1 and prints "port N" once it is ready, so the test needs no fixed port.
"""
from flask import Flask, request
from werkzeug.serving import make_server

app = Flask(__name__)


@app.route("/")
def hello():
    return "Hello"


@app.route("/headers")
def headers():
    # What the app sees of the forwarding headers the proxy sets.
    return "\n".join(f"{k}: {v}" for k, v in request.headers.items() if k.startswith("X-") or k == "Host")


@app.route("/form", methods=["POST"])
def form():
    # A form post: what the app read of the body (AppServerTest sends GETs and these).
    return f"read {len(request.get_data())} bytes"


if __name__ == "__main__":
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(f"port {server.server_port}", flush=True)
    server.serve_forever()
