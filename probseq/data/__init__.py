"""Data layer: character vocabularies, verified corpus downloads and seeded tf.data pipelines.

See :mod:`probseq.data.corpora` for the corpora and their split conventions and
:mod:`probseq.data.pipelines` for the batch layouts.
"""

from probseq.data.cache import CacheDirError, resolve_cache_dir
from probseq.data.corpora import (
    KNOWN_CORPORA,
    SPLITS,
    Corpus,
    CorpusError,
    load_corpus,
    split_text,
)
from probseq.data.download import ChecksumError, DownloadError, download_file
from probseq.data.pipelines import contiguous_batches, num_batches_per_epoch, random_windows
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
    "contiguous_batches",
    "download_file",
    "load_corpus",
    "num_batches_per_epoch",
    "random_windows",
    "resolve_cache_dir",
    "split_text",
]
