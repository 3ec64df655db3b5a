"""The shipped runtime imports only what the platform has, and agrees with the packager."""

import ast
import subprocess
import sys

import pytest

from tests.conftest import REPO
from codapack.tools import package

# What the platform's Python has besides the standard library.
PLATFORM_PACKAGES = {"numpy", "tensorflow", "keras"}


@pytest.mark.parametrize("name", package.RUNTIME_FILES)
def test_runtime_imports_only_platform_packages(name):
    tree = ast.parse((REPO / "codapack" / "submission" / name).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{name}: relative import breaks when the platform imports model.py"
            imported.add(node.module.split(".")[0])
    foreign = imported - PLATFORM_PACKAGES - set(sys.stdlib_module_names)
    assert not foreign, f"{name} imports {foreign}, which the platform does not have"


@pytest.mark.parametrize("script", ["package.py", "harness.py", "leaderboard.py", "submit.py"])
def test_tools_run_as_scripts(script):
    result = subprocess.run([sys.executable, str(REPO / "tools" / script), "--help"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout and "[default:" in result.stdout


@pytest.mark.parametrize("verb", ["train", "evaluate", "package", "harness", "leaderboard", "demo"])
def test_every_verb_has_help(verb):
    from click.testing import CliRunner

    from codapack.cli.main import main

    result = CliRunner().invoke(main, [verb, "--help"])
    assert result.exit_code == 0 and "Usage: main " + verb in result.output.replace("codapack", "main")
