"""Upload a zip to Codabench: `python tools/submit.py submission.zip --competition ID --phase NAME`.

Local checks come first (the zip's last harness verdict in the leaderboard,
its size against the profile's limits); `--dry-run` stops after them and shows
the requests it would send. Then it does what the competition page does:
create the submission dataset, upload the file to the storage URL Codabench
returns, mark the upload complete, create the submission for the phase, and
poll until it finishes, printing its status and scores. See tools/codabench.py
for the endpoints and where in Codabench's source each comes from.
"""

import os
import time

from codapack.errors import CodapackError, fail_for
from codapack.files import file_sha256
from codapack.profile import MB, UPLOAD_FAILS, UPLOAD_RISKY
from codapack.tools import leaderboard
from codapack.tools.codabench import DONE_STATES, CodabenchRefused
from codapack.tools.zip_safety import check_zip


def local_checks(zip_path, profile, board, *, force=False):
    """Everything checkable without the network.

    Returns:
        A dict: `zip`, `sha256`, `bytes`, `last_entry` (id, verdict, phase, created) and `warnings`.

    Raises:
        CodapackError: not a zip; a size at which uploads fail; no OK harness verdict (unless `force`).
    """
    check_zip(zip_path)  # a zip the harness would refuse (duplicate names, a bomb) is never uploaded
    size, digest, warnings = os.path.getsize(zip_path), file_sha256(zip_path), []
    upload, sentence = profile.upload_size(size)
    if upload == UPLOAD_FAILS:
        raise fail_for(zip_path, f"{sentence} on the platform (profile `{profile.name}`)")
    if upload == UPLOAD_RISKY:
        warnings.append(sentence)
    last = board.last_verdict(digest)
    if last is None:
        problem = "has never been run through the harness"
    elif last["verdict"] != leaderboard.OK:
        problem = f"failed its last harness run (entry {last['id']}, {last['created']}): {last['verdict']}"
    else:
        problem = None
    if problem and not force:
        raise fail_for(zip_path, f"{problem}. Run `python tools/harness.py {zip_path} --data FILE` until it "
                                 f"passes, or pass --force to upload anyway")
    if problem:
        warnings.append(f"--force: the zip {problem}")
    entry = {k: last[k] for k in ("id", "verdict", "phase", "created")} if last else None
    return {"zip": os.path.abspath(zip_path), "sha256": digest, "bytes": size, "last_entry": entry,
            "warnings": warnings}


def planned_requests(credentials, competition, phase, zip_path, size):
    """The requests an upload sends, in order, with placeholders for what the server decides."""
    api, name = f"{credentials.url}/api/", os.path.basename(zip_path)
    return [
        ("GET", f"{api}competitions/{competition}/", None),
        ("GET", f"{api}can_make_submission/<id of phase {phase!r}>/", None),
        ("POST", f"{api}datasets/", {"type": "submission", "competition": competition,
                                     "request_sassy_file_name": name, "file_name": name, "file_size": size}),
        ("PUT", "<sassy_url from the answer>", f"<{size} bytes of {name}>"),
        ("PUT", f"{api}datasets/completed/<key from the answer>/", None),
        ("POST", f"{api}submissions/", {"data": "<key>", "phase": f"<id of phase {phase!r}>",
                                        "fact_sheet_answers": None, "tasks": "<the phase's task ids>",
                                        "organization": None, "queue": "<the competition's queue id>"}),
        ("GET", f"{api}submissions/<id>/", "(polled until the status is one of: " + ", ".join(DONE_STATES) + ")"),
    ]


def find_phase(competition, wanted):
    """The phase named `wanted` (or with that id), which must accept submissions now."""
    phases = competition.get("phases") or []
    for phase in phases:
        if str(phase.get("id")) == str(wanted) or str(phase.get("name", "")).lower() == str(wanted).lower():
            break
    else:
        names = ", ".join(f"{p.get('name')!r} (id {p.get('id')})" for p in phases) or "none"
        raise CodapackError(f"competition {competition.get('id')} has no phase {wanted!r}; its phases: {names}")
    # The competition page refuses these before uploading, with these words.
    if phase.get("status") == "Previous":
        raise CodapackError(f"phase {phase['name']!r} has ended and no longer accepts submissions")
    if phase.get("status") == "Next":
        raise CodapackError(f"phase {phase['name']!r} has not started yet; check its start date ({phase.get('start')})")
    return phase


def submit(client, zip_path, competition_id, phase_name, *, wait=True, poll_s=10.0, wait_timeout_s=3600):
    """Upload `zip_path` as a submission to a phase and (with `wait`) poll until it finishes.

    Returns:
        The submission as Codabench last returned it (`id`, `status`, `scores`, ...).
    """
    competition = client.request("GET", f"competitions/{competition_id}/")
    phase = find_phase(competition, phase_name)
    allowed = client.request("GET", f"can_make_submission/{phase['id']}/")
    if not allowed.get("can"):
        raise CodapackError(f"Codabench will not take a submission to phase {phase['name']!r}: {allowed.get('reason')}")
    name, size = os.path.basename(zip_path), os.path.getsize(zip_path)
    dataset = client.request("POST", "datasets/", {"type": "submission", "competition": competition["id"],
                                                   "request_sassy_file_name": name, "file_name": name,
                                                   "file_size": size})
    with open(zip_path, "rb") as f:
        payload = f.read()
    client.log(f"uploading {name} ({size / MB:.2f} MB)")
    client.upload(dataset["sassy_url"], payload, zip_path)
    client.request("PUT", f"datasets/completed/{dataset['key']}/")
    queue = competition.get("queue")
    try:
        created = client.request("POST", "submissions/", {
            "data": dataset["key"], "phase": phase["id"], "fact_sheet_answers": None,
            "tasks": [task["id"] for task in phase.get("tasks", [])], "organization": None,
            "queue": queue["id"] if isinstance(queue, dict) else queue})
    except CodabenchRefused as exc:
        raise CodapackError(f"Codabench refused the submission to phase {phase['name']!r}: {exc.message}") from None
    client.log(f"submission {created['id']} created in phase {phase['name']!r}")
    return poll(client, created, poll_s, wait_timeout_s) if wait else created


def poll(client, submission, poll_s, wait_timeout_s):
    """Follow a submission's status until it is done, printing each change."""
    deadline, status = time.monotonic() + wait_timeout_s, None
    while True:
        submission = client.request("GET", f"submissions/{submission['id']}/")
        if submission.get("status") != status:
            status = submission.get("status")
            client.log(f"status: {status}")
        if status in DONE_STATES:
            return submission
        if time.monotonic() > deadline:
            raise CodapackError(f"submission {submission['id']} is still {status} after {wait_timeout_s:g} s; "
                                f"follow it on the competition's page")
        time.sleep(poll_s)


def scores_of(submission):
    """{column key: score} from a submission's `scores` (Codabench sends scores as decimal strings)."""
    return {score["column_key"]: float(score["score"]) for score in submission.get("scores") or []}
