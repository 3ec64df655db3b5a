"""The platform's Python environment, built once from the profile's pins and cached.

The harness runs a submission there (`--env target`) so that a zip which
passes locally also loads under the platform's older TensorFlow and Keras.
Environments live under $CODAPACK_ENV_CACHE (default ~/.cache/codapack/envs),
one folder per Python version and package set; a lock lets concurrent harness
runs share the build, and a marker written last tells a finished one from
an interrupted one.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys

from codapack.errors import CodapackError

CACHE_ENV = "CODAPACK_ENV_CACHE"
COMPLETE_MARKER = ".codapack-complete"
CURRENT, TARGET = "current", "target"


def env_cache_dir():
    """$CODAPACK_ENV_CACHE, else ~/.cache/codapack/envs."""
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "codapack", "envs")


def env_folder(profile):
    """The cache folder of the profile's platform environment."""
    key = json.dumps([profile.platform_python, sorted(profile.platform_packages)])
    return os.path.join(env_cache_dir(), f"py{profile.platform_python}-{hashlib.sha256(key.encode()).hexdigest()[:12]}")


def find_python(version):
    """An interpreter of `version` ("3.11"): this one if it matches, else `python3.11` on PATH.

    Raises:
        CodapackError: no such interpreter is installed.
    """
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    found = shutil.which(f"python{version}")
    if not found:
        raise CodapackError(f"the platform runs Python {version}, and no `python{version}` is on PATH here; "
                            f"install it to build the target environment")
    return found


def env_python(folder):
    return os.path.join(folder, "bin", "python")


def ensure_target_env(profile, *, log=print):
    """Return the Python of the profile's platform environment, building it on first use.

    Args:
        profile: the competition `Profile` (platform.python, platform.packages).
        log: where to say what is happening (a build takes a minute or more).

    Returns:
        Path to that environment's `python`.

    Raises:
        CodapackError: no matching Python, or pip could not install the pins.
    """
    folder = env_folder(profile)
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    with _locked(folder + ".lock"):
        if os.path.exists(os.path.join(folder, COMPLETE_MARKER)):
            return env_python(folder)
        shutil.rmtree(folder, ignore_errors=True)  # an earlier build was interrupted
        python = find_python(profile.platform_python)
        log(f"building the target environment in {folder}: Python {profile.platform_python}, "
            f"{' '.join(profile.platform_packages)} (once; later runs reuse it)")
        _run([python, "-m", "venv", folder], "create the virtual environment")
        _run([env_python(folder), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
              *profile.platform_packages], "install the platform's packages")
        frozen = subprocess.run([env_python(folder), "-m", "pip", "freeze"], capture_output=True, text=True).stdout
        with open(os.path.join(folder, COMPLETE_MARKER), "w", encoding="utf-8") as f:
            json.dump({"packages": list(profile.platform_packages), "freeze": frozen.splitlines()}, f, indent=1)
    return env_python(folder)


def resolve_python(env, profile, *, log=print):
    """The interpreter for `--env current` (this one) or `--env target` (the platform's)."""
    if env == CURRENT:
        return sys.executable
    if env == TARGET:
        return ensure_target_env(profile, log=log)
    raise CodapackError(f"--env should be `{CURRENT}` or `{TARGET}`. Received: {env!r}")


def _run(command, what):
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
        raise CodapackError(f"could not {what} for the target environment ({' '.join(command[:4])} ...):\n{tail}")


@contextlib.contextmanager
def _locked(path):
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
