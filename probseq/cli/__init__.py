"""The `probseq` command line."""
