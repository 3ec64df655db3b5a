"""After training: packaging a zip, the local harness that runs it as the platform does, the
leaderboard, and upload. The verbs that drive them are in `codapack.cli`."""
