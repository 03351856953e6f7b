"""Learning a BERT WordPiece vocabulary from a text corpus.

Thin wrapper around `tensorflow_text.tools.wordpiece_vocab.
bert_vocab_from_dataset`, which splits text into words with BERT's
`BasicTokenizer` (the same splitting our preprocessor uses) and learns the
word pieces with the bottom-up algorithm of the original BERT release.

Vocabulary layout (the contract with `mobilebert_tf.preprocessing`):

* ids 0..4 are the reserved tokens, in the order given by `reserved_tokens`
  (by default `[PAD] [UNK] [CLS] [SEP] [MASK]`, so `[PAD]` is id 0, which is
  what `BertPackInputs` and the encoder's input mask expect);
* then the learned tokens: single characters, their `##` continuations and
  longer pieces, in the order the learner returns them (sorted by the learner,
  deterministic for a given corpus).

Example:

>>> tokens = learn_wordpiece_vocab(["a tiny corpus", "of two lines"],
...                                vocab_size=100, do_lower_case=True)
>>> tokens[:5]
['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
"""

import os
from typing import Iterable, List, Optional, Sequence

import tensorflow as tf

# The tokens every BERT vocabulary must have (their ids may be anywhere); the
# one list of the project.
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def learn_wordpiece_vocab(
    lines: Iterable[str],
    vocab_size: int,
    do_lower_case: bool,
    reserved_tokens: Sequence[str] = SPECIAL_TOKENS,
    learn_params: Optional[dict] = None) -> List[str]:
  """Learns a WordPiece vocabulary from lines of text.

  Args:
    lines: iterable of str. The corpus, one document or sentence per item.
    vocab_size: int. Target (maximum) size of the vocabulary, reserved tokens
      included. The learner may return fewer tokens for a small corpus.
    do_lower_case: bool. Whether to lower-case and strip accents before
      learning; must match the `do_lower_case` of the preprocessor that will
      use the vocabulary.
    reserved_tokens: sequence of str. Tokens placed first, in this order.
      Must contain `[PAD] [UNK] [CLS] [SEP] [MASK]`. Defaults to exactly
      those five, so that `[PAD]` is id 0.
    learn_params: optional dict of extra keyword arguments for
      `wordpiece_tokenizer_learner_lib.learn` (e.g. `upper_thresh`,
      `lower_thresh`, `num_iterations`, `max_input_tokens`,
      `max_token_length`, `max_unique_chars`, `slack_ratio`,
      `include_joiner_token`). Defaults to None (the learner's defaults).

  Returns:
    A list of unique str tokens, starting with `reserved_tokens`.

  Raises:
    ValueError: if `vocab_size` is not larger than the number of reserved
      tokens, if a required special token is missing from `reserved_tokens`,
      if `reserved_tokens` has duplicates, or if `lines` has no text.
  """
  # Imported lazily: tensorflow_text is heavy and only needed here.
  from tensorflow_text.tools.wordpiece_vocab import bert_vocab_from_dataset  # pylint: disable=g-import-not-at-top

  reserved_tokens = list(reserved_tokens)
  missing = [t for t in SPECIAL_TOKENS if t not in reserved_tokens]
  if missing:
    raise ValueError(
        f"`reserved_tokens` must contain {list(SPECIAL_TOKENS)}; "
        f"missing {missing}. Received: reserved_tokens={reserved_tokens}")
  if len(set(reserved_tokens)) != len(reserved_tokens):
    raise ValueError("`reserved_tokens` must not contain duplicates. "
                     f"Received: reserved_tokens={reserved_tokens}")
  if vocab_size <= len(reserved_tokens):
    raise ValueError(
        f"`vocab_size` must be larger than the number of reserved tokens "
        f"({len(reserved_tokens)}). Received: vocab_size={vocab_size}")
  lines = [line for line in lines if line and line.strip()]
  if not lines:
    raise ValueError("`lines` must contain at least one non-blank line. "
                     "Received: no text.")

  dataset = tf.data.Dataset.from_tensor_slices(tf.constant(lines, tf.string))
  tokens = bert_vocab_from_dataset.bert_vocab_from_dataset(
      dataset.batch(1024),
      vocab_size=vocab_size,
      reserved_tokens=reserved_tokens,
      bert_tokenizer_params=dict(lower_case=do_lower_case),
      learn_params=dict(learn_params or {}))
  # The learner puts reserved tokens first; keep that a checked invariant,
  # and drop any duplicate it might produce for a reserved token.
  result, seen = list(reserved_tokens), set(reserved_tokens)
  for token in tokens[len(reserved_tokens):]:
    if token not in seen:
      seen.add(token)
      result.append(token)
  if tokens[:len(reserved_tokens)] != reserved_tokens:
    raise RuntimeError(  # Internal invariant of the learner, not user input.
        "The WordPiece learner did not put the reserved tokens first: "
        f"{tokens[:len(reserved_tokens)]}")
  return result


def write_vocab_file(tokens: Sequence[str], path: str) -> str:
  """Writes tokens to a BERT vocab file, one token per line, UTF-8.

  Args:
    tokens: sequence of str. Token `i` gets id `i`.
    path: str. Output file; its parent directory must exist.

  Returns:
    The `path` written.

  Raises:
    ValueError: if `tokens` is empty, has duplicates, or a token is empty or
      contains whitespace (a vocab file line cannot represent it).
    FileNotFoundError: if the parent directory of `path` does not exist.
  """
  tokens = list(tokens)
  if not tokens:
    raise ValueError("`tokens` must not be empty. Received: []")
  bad = [t for t in tokens if not t or any(c.isspace() for c in t)]
  if bad:
    raise ValueError("Tokens must be non-empty and contain no whitespace. "
                     f"Received: {bad[:5]!r}")
  dupes = sorted({t for t in tokens if tokens.count(t) > 1}) if len(
      set(tokens)) != len(tokens) else []
  if dupes:
    raise ValueError(f"`tokens` must be unique. Received duplicates: "
                     f"{dupes[:5]!r}")
  parent = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(parent):
    raise FileNotFoundError(
        f"Parent directory of `path` does not exist. Received: path={path!r}")
  with open(path, "w", encoding="utf-8", newline="\n") as f:
    for token in tokens:
      f.write(token + "\n")
  return path
