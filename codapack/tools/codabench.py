"""A small Codabench REST client on the standard library, sending what the site's own upload page sends.

The endpoints and fields follow Codabench's source (github.com/codalab/codabench):

- auth: DRF `TokenAuthentication`, header `Authorization: Token KEY` (src/settings/base.py, REST_FRAMEWORK);
  a token comes from `POST api/api-token-auth/` {username, password} (src/apps/api/urls.py). A bad token
  is answered 403 {"detail": "Invalid token."}, since SessionAuthentication comes first there.
- `GET api/competitions/ID/`: `phases` with `id`, `name`, `status` (Previous/Current/Next) and `tasks`,
  and `queue` (src/apps/api/serializers/competitions.py, PhaseDetailSerializer).
- `GET api/can_make_submission/PHASE/` -> {can, reason} (src/apps/api/views/submissions.py).
- `POST api/datasets/` {type: "submission", competition, request_sassy_file_name, file_name, file_size}
  -> 201 {key, sassy_url} (src/apps/api/views/datasets.py, DataViewSet.create; the page's
  `create_dataset` in src/static/js/ours/client.js); then `PUT sassy_url` with the zip, and
  `PUT api/datasets/completed/KEY/` (datasets.py, upload_completed).
- `POST api/submissions/` {data: KEY, phase, fact_sheet_answers, tasks, organization, queue}
  (src/static/riot/competitions/detail/submission_upload.tag, `upload`;
  src/apps/api/serializers/submissions.py, SubmissionCreationSerializer).
- `GET api/submissions/ID/` -> {status, scores: [{column_key, score}]} (serializers/submissions.py,
  SubmissionSerializer; serializers/submission_leaderboard.py).
"""

import dataclasses
import json
import os
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPException

from codapack.errors import CodapackError, fail_for

DEFAULT_URL = "https://www.codabench.org"
CONFIG_ENV = "CODAPACK_CODABENCH_CONFIG"
DEFAULT_CONFIG = os.path.join("~", ".config", "codapack", "codabench.toml")
DONE_STATES = ("Finished", "Failed", "Cancelled", "Unknown")  # as the upload page's `done_states`
INVALID_TOKEN = "Invalid token."


@dataclasses.dataclass
class Credentials:
    """Where to log in and how.

    Args:
        url: the site, e.g. https://www.codabench.org.
        token: an API token, or None.
        username: for logging in (also to renew a rejected token), or None.
        password: with `username`.
        source: where these came from, for messages (never the secret itself).
    """

    url: str = DEFAULT_URL
    token: str = None
    username: str = None
    password: str = None
    source: str = "nowhere"


def load_credentials(url=None, config_path=None, env=None):
    """Credentials from the environment (CODABENCH_TOKEN, CODABENCH_USERNAME, CODABENCH_PASSWORD,
    CODABENCH_URL), else the config file (`url`, `token`, `username`, `password` keys).

    Args:
        url: overrides every other source of the site's address.
        config_path: the TOML file; default $CODAPACK_CODABENCH_CONFIG or ~/.config/codapack/codabench.toml.
        env: the environment (default os.environ).
    """
    env = os.environ if env is None else env
    path = os.path.expanduser(config_path or env.get(CONFIG_ENV) or DEFAULT_CONFIG)
    config = {}
    if config_path or os.path.isfile(path):
        try:
            with open(path, "rb") as f:
                config = tomllib.load(f)
        except OSError as exc:
            raise fail_for(path, f"cannot read the Codabench config file ({exc.strerror})") from None
        except tomllib.TOMLDecodeError as exc:
            raise fail_for(path, f"not a valid TOML file ({exc})") from None
    if env.get("CODABENCH_TOKEN") or env.get("CODABENCH_USERNAME"):
        found = dict(token=env.get("CODABENCH_TOKEN"), username=env.get("CODABENCH_USERNAME"),
                     password=env.get("CODABENCH_PASSWORD"), source="the environment")
    elif config.get("token") or config.get("username"):
        found = dict(token=config.get("token"), username=config.get("username"), password=config.get("password"),
                     source=path)
    else:
        found = {}
    site = url or env.get("CODABENCH_URL") or config.get("url") or DEFAULT_URL
    return Credentials(url=site.rstrip("/"), **found)


class CodabenchClient:
    """The REST calls a submission needs.

    Args:
        credentials: `Credentials`.
        retries: attempts of the storage upload before giving up.
        backoff_s: wait before upload retry k is k * backoff_s.
        timeout_s: per-request socket timeout.
        log: a function taking one line of progress.
    """

    def __init__(self, credentials, *, retries=3, backoff_s=2.0, timeout_s=120, log=print):
        self.credentials = credentials
        self.api = f"{credentials.url}/api/"
        self.token = credentials.token
        self.retries, self.backoff_s, self.timeout_s, self.log = retries, backoff_s, timeout_s, log

    def login(self):
        """Exchange username and password for a token."""
        if not (self.credentials.username and self.credentials.password):
            raise CodapackError("no Codabench credentials: set CODABENCH_TOKEN, or CODABENCH_USERNAME and "
                                f"CODABENCH_PASSWORD, or put them in {DEFAULT_CONFIG}")
        answer = self._call("POST", "api-token-auth/", {"username": self.credentials.username,
                                                        "password": self.credentials.password}, auth=False)
        self.token = answer["token"]

    def request(self, method, path, body=None):
        """One authenticated API call; a rejected token is renewed once by logging in when possible."""
        if not self.token:
            self.login()
        try:
            return self._call(method, path, body)
        except _TokenRejected as exc:
            if not (self.credentials.username and self.credentials.password):
                raise CodapackError(
                    f"Codabench rejected the token from {self.credentials.source} ({exc}): it has expired or "
                    f"was revoked. Copy a new one from your Codabench profile, or set CODABENCH_USERNAME and "
                    f"CODABENCH_PASSWORD so submit.py can log in") from None
            self.log("the token was rejected; logging in again")
            self.login()
            return self._call(method, path, body)

    def _call(self, method, path, body=None, *, auth=True):
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = f"Token {self.token}"
        url = urllib.parse.urljoin(self.api, path)
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers, method=method),
                                        timeout=self.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            message = _server_message(exc)
            if auth and exc.code in (401, 403) and message == INVALID_TOKEN:
                raise _TokenRejected(message) from None
            raise CodabenchRefused(method, url, exc.code, message) from None
        except (urllib.error.URLError, HTTPException, OSError) as exc:
            raise CodapackError(f"cannot reach Codabench at {url}: {getattr(exc, 'reason', exc)}") from None
        return json.loads(raw) if raw else None

    def upload(self, url, payload, name):
        """PUT the zip to the storage URL the API returned, retrying transient failures.

        No Codabench credentials go with it: the URL is pre-signed.
        """
        headers = {"Content-Type": "application/zip"}
        if urllib.parse.urlparse(url).hostname.endswith(".blob.core.windows.net"):
            # What client.js adds when the site stores files on Azure.
            headers.update({"x-ms-blob-type": "BlockBlob", "x-ms-version": "2018-03-28"})
        last = None
        for attempt in range(1, self.retries + 1):
            try:
                request = urllib.request.Request(url, data=payload, headers=headers, method="PUT")
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    response.read()
                return
            except urllib.error.HTTPError as exc:
                if exc.code < 500:  # the signed URL itself was refused: retrying cannot help
                    raise CodapackError(f"{name}: the storage refused the upload: HTTP {exc.code} "
                                        f"{_server_message(exc)}") from None
                last = f"HTTP {exc.code}"
            except (urllib.error.URLError, HTTPException, OSError) as exc:
                last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            self.log(f"upload attempt {attempt}/{self.retries} failed ({last})")
            if attempt < self.retries:
                time.sleep(self.backoff_s * attempt)
        raise CodapackError(f"{name}: the upload to Codabench's storage failed {self.retries} times "
                            f"(last: {last}); nothing was submitted. Check the connection and run submit.py again")


class _TokenRejected(Exception):
    pass


class CodabenchRefused(CodapackError):
    """An API call answered with an error status; the message is Codabench's own."""

    def __init__(self, method, url, status, message):
        super().__init__(f"Codabench refused {method} {url}: HTTP {status}: {message}")
        self.status, self.message = status, message


def _server_message(exc):
    """Codabench's error text from an error response: `detail`, or the field errors joined."""
    try:
        body = json.loads(exc.read() or b"null")
    except ValueError:
        return exc.reason
    if isinstance(body, dict):
        if "detail" in body:
            return str(body["detail"])
        return "; ".join(f"{key}: {' '.join(map(str, v)) if isinstance(v, list) else v}" for key, v in body.items())
    if isinstance(body, list):
        return "; ".join(map(str, body))
    return exc.reason
