"""The harness's scratch folders: locked while a harness uses one, swept once no harness does.

A harness killed with SIGKILL cannot remove its scratch, which holds the test
images. Each scratch therefore holds a lock file that its harness keeps locked
(`flock`) for as long as it lives: the kernel drops the lock when the process
dies, however it dies, so the next harness to start removes every scratch
whose lock it can take.
"""

import contextlib
import fcntl
import glob
import os
import shutil
import tempfile
import time

PREFIX = "codapack-harness-"
LOCK = ".lock"
# A lock file this young may belong to a harness that created it and has not locked it yet.
GRACE_S = 5
RUN = "run"


def sweep(parent=None):
    """Remove the scratch folders of harnesses that are no longer running; returns them."""
    removed = []
    for folder in glob.glob(os.path.join(parent or tempfile.gettempdir(), PREFIX + "*")):
        try:
            fd = os.open(os.path.join(folder, LOCK), os.O_RDONLY)
        except OSError:
            continue  # not ours, or a harness between mkdtemp and taking its lock
        try:
            if time.time() - os.fstat(fd).st_mtime < GRACE_S:
                continue
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a living harness holds it
        finally:
            os.close(fd)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


@contextlib.contextmanager
def scratch_dir(parent=None):
    """Yield a fresh, locked folder for one run (the part the submission may see); remove it after.

    The lock sits beside the yielded folder, out of the submission's reach.
    """
    sweep(parent)
    folder = tempfile.mkdtemp(prefix=PREFIX, dir=parent)
    fd = os.open(os.path.join(folder, LOCK), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        run = os.path.join(folder, RUN)
        os.mkdir(run)
        yield run
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(fd)
