"""The one error type user-facing failures raise.

Anything the user can fix (a bad file, a wrong option, a missing run) raises
`CodapackError`; the CLI prints its message without a traceback and exits 1.
Any other exception is a bug and keeps its traceback.
"""


class CodapackError(Exception):
    """A problem with the user's input, worded as what was found and what to do.

    Args:
        message: what is wrong, starting with the file or option it concerns.
    """


def fail_for(path, problem):
    """Build a `CodapackError` that names `path` first.

    Args:
        path: the file (or run directory) the problem was found in.
        problem: what is wrong with it and, where useful, how to fix it.

    Returns:
        A `CodapackError` to raise.
    """
    return CodapackError(f"{path}: {problem}")
