"""The command line: every verb of `codapack`, and the options they share."""
