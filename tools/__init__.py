"""Packaging, the local harness and the leaderboard.

Each verb is one file that runs as a script (`python tools/package.py ...`)
and is also a subcommand of `codapack`.
"""
