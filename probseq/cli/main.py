"""Placeholder entry point, replaced by the full CLI."""


def main(argv=None) -> int:
    raise SystemExit("probseq CLI: not yet available")
