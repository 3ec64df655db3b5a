"""A local stand-in for Codabench's REST API, on 127.0.0.1, for the submit.py tests.

It answers the endpoints tools/codabench.py uses the way Codabench's views and
serializers do (status codes, field names, error bodies), keeps what was sent,
and can inject faults: an expired token, storage uploads that break midway,
and phases that refuse submissions.
"""

import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "good-token"
USER, PASSWORD = "team", "secret"


class FakeCodabench:
    """Start with `with FakeCodabench() as site:`; `site.url` is its address."""

    def __init__(self):
        self.tokens = {TOKEN}
        self.failing_uploads = 0           # storage PUTs that break midway before one succeeds
        self.can_submit = (True, None)     # what can_make_submission answers
        self.approved = True               # False: POST submissions/ is refused with 403
        self.competition = {"id": 42, "title": "Blood cells", "queue": None, "phases": [
            {"id": 7, "index": 0, "name": "Development", "status": "Current", "tasks": [{"id": 70}]},
            {"id": 8, "index": 1, "name": "Final", "status": "Next", "start": "2031-01-01T00:00:00Z",
             "tasks": [{"id": 80}]},
            {"id": 6, "index": 2, "name": "Warm-up", "status": "Previous", "tasks": [{"id": 60}]}]}
        self.datasets, self.stored, self.submissions, self.requests = {}, {}, {}, []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    def route(self, method, path, body, headers):
        """(status, JSON body) for one API request, as Codabench would answer."""
        if path == "/api/api-token-auth/" and method == "POST":  # DRF obtain_auth_token
            if (body or {}).get("username") == USER and body.get("password") == PASSWORD:
                self.tokens.add("renewed-token")
                return 200, {"token": "renewed-token"}
            return 400, {"non_field_errors": ["Unable to log in with provided credentials."]}
        auth = headers.get("Authorization", "")
        if not auth:
            return 403, {"detail": "Authentication credentials were not provided."}
        if not auth.startswith("Token ") or auth[6:] not in self.tokens:
            return 403, {"detail": "Invalid token."}
        for pattern, handler in self._routes():
            match = re.fullmatch(pattern, f"{method} {path}")
            if match:
                return handler(body, *match.groups())
        return 404, {"detail": "Not found."}

    def _routes(self):
        return [(r"GET /api/competitions/(\d+)/", self._competition),
                (r"GET /api/can_make_submission/(\d+)/", self._can_make_submission),
                (r"POST /api/datasets/", self._create_dataset),
                (r"PUT /api/datasets/completed/([0-9a-f-]+)/", self._completed),
                (r"POST /api/submissions/", self._create_submission),
                (r"GET /api/submissions/(\d+)/", self._get_submission)]

    def _competition(self, body, pk):
        return (200, self.competition) if int(pk) == self.competition["id"] else (404, {"detail": "Not found."})

    def _can_make_submission(self, body, phase_id):
        can, reason = self.can_submit
        return 200, {"can": can, "reason": reason}

    def _create_dataset(self, body):  # views/datasets.py DataViewSet.create, serializers/datasets.py
        if "file_size" not in body:
            return 500, None  # the view reads request.data['file_size'] unguarded
        if not body.get("request_sassy_file_name"):
            return 400, {"request_sassy_file_name": ["This field is required."]}
        key = str(uuid.uuid4())
        self.datasets[key] = dict(body, completed=False)
        return 201, {"key": key, "sassy_url": f"{self.url}/storage/{key}.zip?signature=abc"}

    def _completed(self, body, key):
        if key not in self.datasets:
            return 404, {"detail": "Not found."}
        self.datasets[key]["completed"] = True
        return 200, {"key": key}

    def _create_submission(self, body):  # serializers/submissions.py SubmissionCreationSerializer
        phases = {p["id"]: p for p in self.competition["phases"]}
        if body.get("phase") not in phases:
            return 400, {"phase": [f'Invalid pk "{body.get("phase")}" - object does not exist.']}
        if body.get("data") not in self.datasets:
            return 400, {"data": [f"Object with key={body.get('data')} does not exist."]}
        if not all(task in [t["id"] for t in phases[body["phase"]]["tasks"]] for task in body.get("tasks") or []):
            return 400, ["All tasks must be part of the current phase."]
        if not self.approved:
            return 403, {"detail": "You do not have access to this competition to make a submission"}
        pk = len(self.submissions) + 1
        self.submissions[pk] = {"id": pk, "phase": body["phase"], "data": body["data"], "polls": 0}
        return 201, {"id": pk, "data": body["data"], "phase": body["phase"], "status": "Submitting",
                     "filename": self.datasets[body["data"]]["file_name"], "tasks": body.get("tasks")}

    def _get_submission(self, body, pk):  # serializers/submissions.py SubmissionSerializer
        submission = self.submissions.get(int(pk))
        if submission is None:
            return 404, {"detail": "Not found."}
        states = ("Submitted", "Running", "Scoring", "Finished")
        status = states[min(submission["polls"], len(states) - 1)]
        submission["polls"] += 1
        scores = [{"id": 1, "index": 0, "score": "0.8125000000", "column_key": "accuracy"}] \
            if status == "Finished" else []
        return 200, {"id": int(pk), "pk": int(pk), "phase": submission["phase"], "status": status,
                     "scores": scores, "filename": "submission.zip"}


def _handler_for(site):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _answer(self, status, body):
            raw = json.dumps(body).encode() if body is not None else b"Server Error"
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if body is not None else "text/html")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _handle(self, method):
            path = self.path.split("?")[0]
            length = int(self.headers.get("Content-Length") or 0)
            site.requests.append((method, self.path, dict(self.headers)))
            if path.startswith("/storage/") and method == "PUT":
                if site.failing_uploads > 0:
                    site.failing_uploads -= 1
                    self.rfile.read(length // 2)  # half the file arrives, then the connection drops
                    self.close_connection = True
                    return
                site.stored[path] = self.rfile.read(length)
                return self._answer(200, {})
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            self._answer(*site.route(method, path, body, self.headers))

        def do_GET(self):
            self._handle("GET")

        def do_POST(self):
            self._handle("POST")

        def do_PUT(self):
            self._handle("PUT")

    return Handler
