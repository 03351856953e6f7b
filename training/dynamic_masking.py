"""Pretraining examples straight from raw text, with fresh masks every epoch.

`dynamic_masking_dataset` is a `tf.data` pipeline from text files to the
features tf-models-official's `BertPretrainDataLoader` yields for records
(`training.records`), so a trainer treats both sources the same:

    input_word_ids, input_mask, input_type_ids   int32   [seq_length]
    masked_lm_positions, masked_lm_ids          int32   [max_predictions]
    masked_lm_weights                           float32 [max_predictions]
    next_sentence_labels                        int32   [1]

Pipeline: the files' lines, in order, `block_lines` at a time -> word
pieces (`mobilebert_tf.preprocessing.BertWordpieceTokenizer`, the exported
preprocessor's tokenizer) -> sentence pairs -> `tensorflow_text.
RoundRobinTrimmer` to `seq_length - 3` pieces -> `combine_segments` (`[CLS]
A [SEP] B [SEP]`, segment ids 0/1) -> `RandomItemSelector` +
`MaskValuesChooser` + `mask_language_model` -> `pad_model_inputs`.

Sentence pairs (next-sentence prediction), within a block of lines: a line
is one sentence; a blank line (or one without a word piece, or the end of a
file) ends a document. Every line followed by a line of the same document
is a segment A once per epoch; B is that next line (label 0) or, with probability
`random_next_prob`, a random line of another document of the block (label
1; if the block has one document, a random line other than A and its
successor; if it has no other line, the next line, label 0). The last line
of a document is only ever a B. Unlike google-research/bert's
`create_pretraining_data.py` (`training.create_pretraining_data`), segments
are single lines, not chunks packed to the target length, and random
segments come from the same block, not the whole corpus.

Masking: `masked_lm_prob` of the pieces other than `[CLS]`/`[SEP]` (rounded
up: `RandomItemSelector`'s rule; the original rounds `len(tokens) * rate`),
at most `max_predictions`; 80% become `[MASK]`, 10% a random id of the
vocabulary, 10% stay.

Determinism: every draw is a stateless function of `(seed, epoch, block)`,
so equal arguments give equal streams (in any process, with any
parallelism), each epoch has new pairs and masks, and a resumed run rebuilds
its stream from `start_epoch` (then `skip`s the examples it had consumed).
TF Text's selector and chooser draw with stateful, unseeded ops, which would
repeat their draws every epoch: this module passes the selector a seeded
`shuffle_fn` and uses a `MaskValuesChooser` whose draws are seeded.

Example:

>>> dataset = dynamic_masking_dataset("corpus.txt", "vocab.txt",
...                                   seq_length=128, max_predictions=20,
...                                   seed=1, num_epochs=3)
>>> batches = dataset.shuffle(10_000, seed=1).batch(256)  # the trainer's
"""

import functools
import random
from typing import Optional, Sequence, Union

import tensorflow as tf
import tensorflow_text as text

from mobilebert_tf import files
from mobilebert_tf import preprocessing

MASKED_LM_PROB = 0.15
RANDOM_NEXT_PROB = 0.5
MASK_TOKEN_RATE = 0.8
RANDOM_TOKEN_RATE = 0.1
BLOCK_LINES = 256
FEATURE_NAMES = ("input_word_ids", "input_mask", "input_type_ids",
                 "masked_lm_positions", "masked_lm_ids", "masked_lm_weights",
                 "next_sentence_labels")

# Streams of one block's seed, for the independent draws made from it.
_PAIR_DRAW, _PARTNER_DRAW, _SELECT_DRAW, _VALUE_DRAW = range(4)


class SeededMaskValuesChooser(text.MaskValuesChooser):
  """`tensorflow_text.MaskValuesChooser` drawing from a stateless seed.

  Same rates and meaning as the parent (`mask_token_rate` -> `[MASK]`,
  `random_token_rate` -> a uniform id in `[0, vocab_size)`, else the piece
  stays); the draws are a function of `seed`, so they repeat exactly for an
  equal seed and change with it.

  Args:
    vocab_size: int. Random ids are drawn from `[0, vocab_size)`.
    mask_token: int. Id of `[MASK]`.
    seed: int Tensor `[2]`. The stateless seed.
    mask_token_rate: float. Defaults to 0.8.
    random_token_rate: float. Defaults to 0.1.
  """

  def __init__(self, vocab_size, mask_token, seed,
               mask_token_rate=MASK_TOKEN_RATE,
               random_token_rate=RANDOM_TOKEN_RATE):
    super().__init__(vocab_size, mask_token, mask_token_rate=mask_token_rate,
                     random_token_rate=random_token_rate)
    self._seed = seed
    self._rates = (mask_token_rate, random_token_rate)

  def get_mask_values(self, masked_lm_ids: tf.RaggedTensor) -> tf.RaggedTensor:
    """The values of the selected pieces (same shape as `masked_lm_ids`)."""
    flat = masked_lm_ids.flat_values
    shape = tf.shape(flat)
    draw = tf.random.stateless_uniform(
        shape, tf.random.experimental.stateless_fold_in(self._seed, 0))
    random_ids = tf.random.stateless_uniform(
        shape, tf.random.experimental.stateless_fold_in(self._seed, 1),
        minval=0, maxval=self.vocab_size, dtype=tf.int64)
    mask_rate, random_rate = self._rates
    values = tf.where(
        draw < mask_rate, tf.cast(self.mask_token, flat.dtype),
        tf.where(draw < mask_rate + random_rate,
                 tf.cast(random_ids, flat.dtype), flat))
    return masked_lm_ids.with_flat_values(values)


def _seeded_shuffle(seed):
  """A `shuffle_fn` for `RandomItemSelector`: stateless, distinct per row.

  The selector calls it once per row with the row's candidate positions,
  which are positions in the flattened batch: unique per row, so folding the
  first one into the seed gives each row its own permutation.
  """
  def shuffle(positions):
    first = tf.cast(tf.reduce_min(tf.concat(
        [tf.cast(positions, tf.int64), [tf.int64.max]], 0)), tf.int64)
    row_seed = tf.random.experimental.stateless_fold_in(seed, first)
    return tf.random.experimental.stateless_shuffle(positions, row_seed)
  return shuffle


def _fold(seed, *values):
  for value in values:
    seed = tf.random.experimental.stateless_fold_in(seed, value)
  return seed


def _pairs(num_pieces: tf.Tensor, seed: tf.Tensor, random_next_prob: float):
  """Sentence pairs of one block (see the module docstring).

  Args:
    num_pieces: int Tensor `[lines]`. Word pieces of each line (0: blank).
    seed: int64 Tensor `[2]`. The block's seed.
    random_next_prob: float. Probability of a random B.

  Returns:
    `(a_lines, b_lines, is_random)`: int32 `[pairs]` line indices of A and B,
    and bool `[pairs]`.
  """
  n = tf.size(num_pieces)
  index = tf.range(n)
  valid = num_pieces > 0
  valid_int = tf.cast(valid, tf.int32)
  has_next = valid & tf.concat([valid[1:], [False]], 0)
  rank = tf.cumsum(valid_int, exclusive=True)  # Among the valid lines.
  num_valid = tf.reduce_sum(valid_int)
  # Documents: runs of valid lines between blank ones.
  document = tf.cumsum(tf.cast(~valid, tf.int32))
  doc_size = tf.math.unsorted_segment_sum(valid_int, document, n + 1)
  doc_start = tf.cumsum(doc_size, exclusive=True)
  own_start = tf.gather(doc_start, document)
  own_size = tf.gather(doc_size, document)
  # Random partners: the lines of other documents, or if there are none,
  # every line but A and its successor (ranks rank, rank + 1).
  other_documents = num_valid - own_size > 0
  skip_start = tf.where(other_documents, own_start, rank)
  skip_size = tf.where(other_documents, own_size, 2)
  count = num_valid - skip_size
  wants_random = tf.random.stateless_uniform(
      [n], _fold(seed, _PAIR_DRAW)) < random_next_prob
  is_random = wants_random & (count > 0)
  k = tf.cast(tf.random.stateless_uniform([n], _fold(seed, _PARTNER_DRAW)) *
              tf.cast(tf.maximum(count, 1), tf.float32), tf.int32)
  k = tf.minimum(k, tf.maximum(count - 1, 0))
  k += tf.where(k >= skip_start, skip_size, 0)  # Jump over the skipped run.
  # A trailing 0: a block without text gathers something (then drops it).
  valid_lines = tf.concat([tf.cast(tf.where(valid)[:, 0], tf.int32), [0]], 0)
  partner = tf.gather(valid_lines, tf.clip_by_value(
      k, 0, tf.maximum(num_valid - 1, 0)))
  b_lines = tf.where(is_random, partner, index + 1)
  return (tf.boolean_mask(index, has_next), tf.boolean_mask(b_lines, has_next),
          tf.boolean_mask(is_random, has_next))


def _file_paths(file_patterns: Union[str, Sequence[str]]):
  return files.expand_globs(file_patterns, "file_patterns")


def _check(seq_length, max_predictions, masked_lm_prob, random_next_prob,
           block_lines, num_epochs, start_epoch):
  for name, value, minimum in (("seq_length", seq_length, 5),
                               ("max_predictions", max_predictions, 1),
                               ("block_lines", block_lines, 2),
                               ("start_epoch", start_epoch, 0)):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
      raise ValueError(f"`{name}` must be an integer >= {minimum}. Received: "
                       f"{name}={value!r}")
  if num_epochs is not None and (not isinstance(num_epochs, int)
                                 or num_epochs < 1):
    raise ValueError("`num_epochs` must be None (forever) or an integer >= 1."
                     f" Received: num_epochs={num_epochs!r}")
  if not 0.0 < masked_lm_prob <= 1.0:
    raise ValueError("`masked_lm_prob` must be in (0, 1]. Received: "
                     f"masked_lm_prob={masked_lm_prob!r}")
  if not 0.0 <= random_next_prob <= 1.0:
    raise ValueError("`random_next_prob` must be in [0, 1]. Received: "
                     f"random_next_prob={random_next_prob!r}")


def dynamic_masking_dataset(file_patterns: Union[str, Sequence[str]],
                            vocab_file: str, seq_length: int,
                            max_predictions: int, do_lower_case: bool = True,
                            masked_lm_prob: float = MASKED_LM_PROB,
                            seed: Optional[int] = None,
                            num_epochs: Optional[int] = None,
                            start_epoch: int = 0,
                            random_next_prob: float = RANDOM_NEXT_PROB,
                            block_lines: int = BLOCK_LINES
                            ) -> tf.data.Dataset:
  """Masked-LM + next-sentence examples from text files, masked on the fly.

  See the module docstring for the recipe.

  Args:
    file_patterns: str (comma-separated globs) or sequence of globs. Text
      files, one sentence per line, a blank line between documents; read in
      sorted order within a glob.
    vocab_file: str. The WordPiece vocabulary.
    seq_length: int >= 5. Length of the sequence features.
    max_predictions: int >= 1. Masked-LM slots per example.
    do_lower_case: bool. Lower-case and strip accents (uncased models).
      Defaults to True.
    masked_lm_prob: float in (0, 1]. Fraction of the pieces predicted.
      Defaults to 0.15.
    seed: int or None. Seed of every draw; None draws one (the stream is
      then not reproducible in another process). Defaults to None.
    num_epochs: int or None. Passes over the files; None repeats forever.
      Defaults to None.
    start_epoch: int. Index of the first epoch (epochs draw from `(seed,
      epoch)`): to rebuild a stream from a later epoch. Defaults to 0.
    random_next_prob: float in [0, 1]. Probability of a random segment B.
      Defaults to 0.5.
    block_lines: int. Lines per block (pairs and random partners stay in
      a block; more lines, more memory per step). Defaults to 256.

  Returns:
    A `tf.data.Dataset` of UNBATCHED examples: dicts of the features in the
    module docstring (`FEATURE_NAMES`).

  Raises:
    FileNotFoundError: a glob matches no file, or `vocab_file` is missing.
    ValueError: an argument out of range, or a vocabulary without the
      special tokens.
    TypeError: `seed` is not an int or None.
  """
  _check(seq_length, max_predictions, masked_lm_prob, random_next_prob,
         block_lines, num_epochs, start_epoch)
  paths = _file_paths(file_patterns)
  if not tf.io.gfile.exists(vocab_file):
    raise FileNotFoundError(f"`vocab_file` does not exist. Received: "
                            f"vocab_file={vocab_file!r}")
  if seed is None:
    seed = random.SystemRandom().randrange(2**31)
  if isinstance(seed, bool) or not isinstance(seed, int):
    raise TypeError(f"`seed` must be an int or None. Received: seed={seed!r}")
  base_seed = tf.constant([seed >> 32, seed & 0xFFFFFFFF], tf.int64)
  # The file's size and time are in the key: a rewritten vocabulary is read
  # again.
  stat = tf.io.gfile.stat(vocab_file)
  examples_of_block = _block_function(
      vocab_file, (stat.length, stat.mtime_nsec), bool(do_lower_case),
      seq_length, max_predictions, float(masked_lm_prob),
      float(random_next_prob))

  def lines_of(path):
    # A blank line after each file: a file's end ends its last document.
    return tf.data.TextLineDataset(path).concatenate(
        tf.data.Dataset.from_tensors(tf.constant("")))

  def epoch_examples(epoch):
    blocks = tf.data.Dataset.from_tensor_slices(paths).flat_map(
        lines_of).batch(block_lines).enumerate()
    return blocks.map(
        lambda block, lines: examples_of_block(base_seed, epoch, block, lines),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()

  if num_epochs is None:
    epochs = tf.data.Dataset.counter(start_epoch)
  else:
    epochs = tf.data.Dataset.range(start_epoch, start_epoch + num_epochs)
  return epochs.flat_map(epoch_examples)


@functools.lru_cache(maxsize=8)
def _block_function(vocab_file, vocab_version, do_lower_case, seq_length,
                    max_predictions, masked_lm_prob, random_next_prob):
  """The traced function: one block of lines -> its examples.

  Cached: datasets of equal settings (another seed, a later start epoch, a
  rebuilt pipeline) reuse the traced graph instead of tracing it again.
  `vocab_version` only keys the cache.
  """
  del vocab_version
  tokenizer = preprocessing.BertWordpieceTokenizer(vocab_file=vocab_file,
                                                   lower_case=do_lower_case)
  special = tokenizer.get_special_tokens_dict()
  cls_id, sep_id = special["start_of_sequence_id"], special["end_of_segment_id"]
  trimmer = text.RoundRobinTrimmer(max_seq_length=seq_length - 3)

  @tf.function(input_signature=[tf.TensorSpec([2], tf.int64),
                                tf.TensorSpec([], tf.int64),
                                tf.TensorSpec([], tf.int64),
                                tf.TensorSpec([None], tf.string)])
  def examples_of_block(base_seed, epoch, block, lines):
    seed = _fold(base_seed, epoch, block)
    pieces = tokenizer(lines).merge_dims(1, 2)  # [lines, (pieces)]
    a_lines, b_lines, is_random = _pairs(pieces.row_lengths(), seed,
                                         random_next_prob)
    segments = trimmer.trim([tf.gather(pieces, a_lines),
                             tf.gather(pieces, b_lines)])
    ids, types = text.combine_segments(segments, cls_id, sep_id)
    selector = text.RandomItemSelector(
        max_selections_per_batch=max_predictions,
        selection_rate=masked_lm_prob, unselectable_ids=[cls_id, sep_id],
        shuffle_fn=_seeded_shuffle(_fold(seed, _SELECT_DRAW)))
    chooser = SeededMaskValuesChooser(special["vocab_size"],
                                      special["mask_id"],
                                      _fold(seed, _VALUE_DRAW))
    masked, positions, labels = text.mask_language_model(ids, selector,
                                                         chooser)
    word_ids, mask = text.pad_model_inputs(masked, seq_length)
    type_ids, _ = text.pad_model_inputs(types, seq_length)
    positions, weights = text.pad_model_inputs(positions, max_predictions)
    labels, _ = text.pad_model_inputs(labels, max_predictions)
    features = dict(input_word_ids=word_ids, input_mask=mask,
                    input_type_ids=type_ids, masked_lm_positions=positions,
                    masked_lm_ids=labels, masked_lm_weights=weights,
                    next_sentence_labels=is_random[:, None])
    lengths = dict(masked_lm_positions=max_predictions,
                   masked_lm_ids=max_predictions,
                   masked_lm_weights=max_predictions, next_sentence_labels=1)
    return {name: tf.ensure_shape(
        tf.cast(value, tf.float32 if name == "masked_lm_weights"
                else tf.int32), [None, lengths.get(name, seq_length)])
            for name, value in features.items()}

  return examples_of_block
