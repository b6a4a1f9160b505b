"""Data layer: character vocabularies, verified corpus downloads and seeded tf.data pipelines.

See :mod:`probseq.data.corpora` for the corpora and their split conventions,
:mod:`probseq.data.pipelines` for the window batch layouts and
:mod:`probseq.data.sequences` for line- or record-structured text (one sequence each),
bucketed by length.
"""

from probseq.data.cache import CacheDirError, resolve_cache_dir
from probseq.data.corpora import (
    KNOWN_CORPORA,
    SPLITS,
    Corpus,
    CorpusError,
    load_corpus,
    paradise_lost_text,
    split_text,
)
from probseq.data.download import ChecksumError, DownloadError, download_file
from probseq.data.pipelines import contiguous_batches, num_batches_per_epoch, random_windows
from probseq.data.sequences import (
    bucketed_batches,
    default_bucket_boundaries,
    encode_sequences,
    num_bucketed_batches_per_epoch,
    parse_sequences,
    read_sequences,
    split_sequences,
)
from probseq.data.vocabulary import UnknownCharacterError, Vocabulary

__all__ = [
    "KNOWN_CORPORA",
    "SPLITS",
    "CacheDirError",
    "ChecksumError",
    "Corpus",
    "CorpusError",
    "DownloadError",
    "UnknownCharacterError",
    "Vocabulary",
    "bucketed_batches",
    "contiguous_batches",
    "default_bucket_boundaries",
    "download_file",
    "encode_sequences",
    "load_corpus",
    "paradise_lost_text",
    "num_batches_per_epoch",
    "num_bucketed_batches_per_epoch",
    "parse_sequences",
    "random_windows",
    "read_sequences",
    "resolve_cache_dir",
    "split_sequences",
    "split_text",
]
