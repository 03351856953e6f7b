"""Pretraining records: BERT's `tf.train.Example` format, written atomically.

The format of google-research/bert's `create_pretraining_data.py`, read
unchanged by tf-models-official's `BertPretrainDataLoader` (its default,
non-v2 feature names) and by the original `run_pretraining.py` input
function. Per example:

    input_ids             int64   [seq_length]       word-piece ids, 0-padded
    input_mask            int64   [seq_length]       1 for tokens, 0 padding
    segment_ids           int64   [seq_length]       0 for [CLS] A [SEP], 1 after
    masked_lm_positions   int64   [max_predictions]  0-padded
    masked_lm_ids         int64   [max_predictions]  0-padded
    masked_lm_weights     float32 [max_predictions]  1.0 real, 0.0 padding
    next_sentence_labels  int64   [1]                1: B is a random segment

In memory (`read_dataset`, `training.pretraining_data.Batch`) the features
have tf-models-official's model-side names: `input_word_ids` for
`input_ids`, `input_type_ids` for `segment_ids`; the rest are unchanged.

Example:

>>> with records.record_writer("out/train.tfrecord") as write:
...   for row in rows:          # dicts of model-side names -> 1-D arrays
...     write(row)
>>> dataset = records.read_dataset("out/*.tfrecord", seq_length=128,
...                                max_predictions=20)
"""

import contextlib
from typing import Callable, Dict, Iterator, Mapping

import numpy as np
import tensorflow as tf

from mobilebert_tf import files

# Record feature name -> model-side name.
RECORD_TO_MODEL_NAMES = {
    "input_ids": "input_word_ids",
    "input_mask": "input_mask",
    "segment_ids": "input_type_ids",
    "masked_lm_positions": "masked_lm_positions",
    "masked_lm_ids": "masked_lm_ids",
    "masked_lm_weights": "masked_lm_weights",
    "next_sentence_labels": "next_sentence_labels",
}
_FLOAT_FEATURES = ("masked_lm_weights",)
_SEQUENCE_FEATURES = ("input_ids", "input_mask", "segment_ids")


def feature_spec(seq_length: int,
                 max_predictions: int) -> Dict[str, tf.io.FixedLenFeature]:
  """`tf.io.parse_example` spec of the records (record feature names)."""
  spec = {}
  for name in RECORD_TO_MODEL_NAMES:
    if name in _SEQUENCE_FEATURES:
      shape = [seq_length]
    elif name == "next_sentence_labels":
      shape = [1]
    else:
      shape = [max_predictions]
    dtype = tf.float32 if name in _FLOAT_FEATURES else tf.int64
    spec[name] = tf.io.FixedLenFeature(shape, dtype)
  return spec


def to_example(row: Mapping[str, np.ndarray]) -> tf.train.Example:
  """One example (model-side names -> 1-D arrays or scalars) as a record."""
  feature = {}
  for record_name, model_name in RECORD_TO_MODEL_NAMES.items():
    values = np.asarray(row[model_name]).reshape(-1)
    if record_name in _FLOAT_FEATURES:
      feature[record_name] = tf.train.Feature(
          float_list=tf.train.FloatList(value=values.astype(np.float32)))
    else:
      feature[record_name] = tf.train.Feature(
          int64_list=tf.train.Int64List(value=values.astype(np.int64)))
  return tf.train.Example(features=tf.train.Features(feature=feature))


@contextlib.contextmanager
def serialized_record_writer(path: str, overwrite: bool = False
                             ) -> Iterator[Callable[[bytes], None]]:
  """Like `record_writer`, but `write` takes serialized `tf.train.Example`s.

  For writers that serialize elsewhere (`to_example(row).SerializeToString()`
  in worker processes), so that the writing process only copies bytes.

  Raises:
    FileExistsError: `path` exists and `overwrite` is False.
  """
  with files.staged_file(path, overwrite) as tmp:
    with tf.io.TFRecordWriter(tmp) as writer:
      yield writer.write


@contextlib.contextmanager
def record_writer(path: str, overwrite: bool = False
                  ) -> Iterator[Callable[[Mapping[str, np.ndarray]], None]]:
  """Yields `write(row)`; the file appears at `path` only when complete.

  The records are written to a temporary file beside `path` and renamed
  into place when the block ends without an exception (`mobilebert_tf.files`).

  Raises:
    FileExistsError: `path` exists and `overwrite` is False.
  """
  with serialized_record_writer(path, overwrite) as write:
    yield lambda row: write(to_example(row).SerializeToString())


def write_batch(path: str, batch, overwrite: bool = False) -> int:
  """Writes a `training.pretraining_data.Batch` as records; returns the count."""
  features = batch.features()
  with record_writer(path, overwrite) as write:
    for i in range(len(batch)):
      write({name: array[i] for name, array in features.items()})
  return len(batch)


def parse(serialized: tf.Tensor, seq_length: int,
          max_predictions: int) -> Dict[str, tf.Tensor]:
  """Serialized records (any batch shape) -> model-side features.

  Integers become int32 (what the model takes), weights stay float32.
  """
  parsed = tf.io.parse_example(serialized,
                               feature_spec(seq_length, max_predictions))
  return {RECORD_TO_MODEL_NAMES[name]: (tf.cast(value, tf.int32)
                                        if value.dtype == tf.int64 else value)
          for name, value in parsed.items()}


def read_dataset(pattern: str, seq_length: int,
                 max_predictions: int) -> tf.data.Dataset:
  """The records of the files matching `pattern` (in file order), parsed.

  Raises:
    FileNotFoundError: a glob of `pattern` (comma-separated globs) matches
      nothing.
  """
  paths = files.expand_globs(pattern, "pattern")
  return tf.data.TFRecordDataset(paths).map(
      lambda s: parse(s, seq_length, max_predictions))
