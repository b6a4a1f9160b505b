"""The data layer's old home of the atomic-write and checksum helpers (now `probseq.files`)."""

from probseq.files import (
    atomic_output,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    sha256_file,
)

__all__ = ["atomic_output", "atomic_path", "atomic_write_bytes", "atomic_write_text", "sha256_file"]
