"""Text preprocessing for MobileBERT, following the TF-Hub preprocessor API.

The preprocessor model (`build_preprocessor`; `export.preprocessor_savedmodel`
writes it as a SavedModel) behaves like
`tensorflow/bert_en_uncased_preprocess/3`
(https://www.tensorflow.org/hub/common_saved_model_apis/text):

* root callable: `[batch]` strings -> dict of int32 `input_word_ids`,
  `input_mask`, `input_type_ids`, each `[batch, seq_length]`;
* `.tokenize`: strings -> int32 RaggedTensor `[batch, (words), (pieces)]`,
  with `.tokenize.get_special_tokens_dict()`;
* `.tokenize_with_offsets`: the ids plus int64 start/limit byte offsets into
  the input strings;
* `.bert_pack_inputs(segments, seq_length=N)`: packs 1 or 2 segments as
  `[CLS] a [SEP] (b [SEP])` with round-robin truncation;
* `.vocab_file`: the vocabulary, carried as a SavedModel asset.

Packing and the SavedModel wrapper are reused from TF Model Garden
(`official.nlp.modeling.layers.BertPackInputs`,
`official.nlp.tools.export_tfhub_lib.BertPackInputsSavedModelWrapper`);
word-piece lookup is `tensorflow_text`'s.

Tokenization reproduces BERT (and transformers' `BertTokenizerFast`) exactly;
TF Text's own `BertTokenizer`/`FastBertTokenizer` differ in corner cases that
we measured, so normalization is done here before TF Text's word splitter:

1. Invalid UTF-8 is replaced by U+FFFD (like `bytes.decode(errors="replace")`),
   then dropped with the other characters BERT drops (step 2). So invalid
   bytes never raise; they behave as if absent.
2. BERT's `clean_text`: tab/CR/LF and every Unicode White_Space character
   (NBSP, U+2028, U+3000, ...) become a space; control, format (zero-width,
   BOM), private-use characters and U+FFFD are removed. TF Text only splits on
   ASCII whitespace and keeps format characters, so "a\u00a0b" and "a\u200bb"
   differed from BERT in cased mode.
3. Uncased: NFD, drop nonspacing marks (accents), then Unicode lower case, as
   BertTokenizerFast does. TF Text's `lower_case=True` uses NFKC case folding,
   which maps "ß" -> "ss", "ﬁ" -> "fi", full-width "Ａ" -> "a": not BERT.
4. Words longer than 100 characters (not bytes) become `[UNK]`, as in BERT.
   TF Text counts bytes (`max_bytes_per_word=100`), which turns a 60-letter
   accented word into `[UNK]`.

Known remaining differences from `BertTokenizerFast`: literal "[MASK]",
"[CLS]", ... in the input text are split as ordinary punctuation and words (as
in the original BERT and the TF-Hub preprocessors), whereas transformers
matches them as special tokens; unassigned code points (Unicode category Cn)
are kept (RE2 has no `\\p{Cn}`), and lower-casing follows ICU's Unicode
version (differs from Python 3.11 for ~40 recently added letters).

The offsets path normalizes character by character to map offsets back.
All four TF pipelines give BertTokenizerFast's ids on the plain corpus; only
ours also match on the corner cases above. `text.FastBertTokenizer` cannot be
used as is: it does its own word splitting, so neither the character-based
long-word rule nor BERT's normalization can be applied.

Example:

>>> preprocessor = build_preprocessor(vocab_file, do_lower_case=True)
>>> inputs = preprocessor(tf.constant(["hello world"]))
>>> inputs["input_word_ids"].shape
TensorShape([1, 128])
"""

from typing import Dict, List, Sequence

import tensorflow as tf
import tensorflow_text as text
import tf_keras
from official.nlp.modeling import layers as nlp_layers
from official.nlp.tools import export_tfhub_lib

from mobilebert_tf import _compat
from mobilebert_tf.vocab import SPECIAL_TOKENS

TOKENIZERS = ("fast", "bert")
# BERT's WordPiece turns longer words into [UNK] (`max_input_chars_per_word`).
MAX_CHARS_PER_WORD = 100

# Characters BERT's clean_text maps to a space: Unicode White_Space minus the
# control characters U+000B, U+000C, U+001C..U+001F, U+0085 (removed instead).
_WHITESPACE_PATTERN = (r"[\t\n\r \x{00A0}\x{1680}\x{2000}-\x{200A}\x{2028}"
                       r"\x{2029}\x{202F}\x{205F}\x{3000}]")
# Characters BERT's clean_text removes (run after _WHITESPACE_PATTERN, so that
# tab/CR/LF, which are Cc, have already become spaces).
_REMOVED_PATTERN = r"[\p{Cc}\p{Cf}\p{Co}\x{FFFD}]"


# === Vocabulary ===


def read_vocab(vocab_file: str) -> List[str]:
  """Reads and validates a BERT vocabulary file (one token per line, UTF-8).

  Args:
    vocab_file: str. Path of the vocab file; line `i` is the token of id `i`.

  Returns:
    The list of tokens.

  Raises:
    FileNotFoundError: if `vocab_file` does not exist.
    ValueError: if the file is not UTF-8, is empty, has an empty line, has a
      duplicate token, or lacks one of `[PAD] [UNK] [CLS] [SEP] [MASK]`.
  """
  if not tf.io.gfile.exists(vocab_file):
    raise FileNotFoundError(
        f"`vocab_file` does not exist. Received: vocab_file={vocab_file!r}")
  with tf.io.gfile.GFile(vocab_file, "rb") as f:
    data = f.read()
  try:
    content = data.decode("utf-8")
  except UnicodeDecodeError as e:
    raise ValueError(f"`vocab_file` must be UTF-8 text ({e}). "
                     f"Received: vocab_file={vocab_file!r}") from e
  tokens = content.split("\n")
  if tokens and tokens[-1] == "":
    tokens.pop()  # Final newline.
  tokens = [t[:-1] if t.endswith("\r") else t for t in tokens]
  validate_vocab(tokens, source=vocab_file)
  return tokens


def validate_vocab(tokens: Sequence[str], source: str = "vocabulary") -> None:
  """Checks that a token list is a usable BERT vocabulary.

  Args:
    tokens: sequence of str. Token `i` has id `i`.
    source: str. Where the tokens come from, for error messages. Defaults to
      "vocabulary".

  Raises:
    ValueError: if `tokens` is empty, contains an empty token or a duplicate,
      or lacks one of `[PAD] [UNK] [CLS] [SEP] [MASK]`.
  """
  if not tokens:
    raise ValueError(f"The vocabulary must not be empty. Received: an empty "
                     f"vocabulary from {source!r}")
  empty = [i for i, t in enumerate(tokens) if not t.strip()]
  if empty:
    raise ValueError(
        f"The vocabulary must not contain empty or blank tokens. Received: "
        f"blank token at line(s) {[i + 1 for i in empty[:5]]} of {source!r}")
  seen, dupes = {}, []
  for i, t in enumerate(tokens):
    if t in seen:
      dupes.append(f"{t!r} (lines {seen[t] + 1} and {i + 1})")
    else:
      seen[t] = i
  if dupes:
    raise ValueError(f"The vocabulary must not contain duplicate tokens. "
                     f"Received: {', '.join(dupes[:5])} in {source!r}")
  missing = [t for t in SPECIAL_TOKENS if t not in seen]
  if missing:
    raise ValueError(
        f"The vocabulary must contain the special tokens "
        f"{' '.join(SPECIAL_TOKENS)}; missing {' '.join(missing)} in "
        f"{source!r}. Add them (conventionally as the first lines).")


def check_vocab(vocab_file: str, config) -> List[str]:
  """Reads a vocabulary and checks it against a model's config.

  Args:
    vocab_file: str. BERT vocab file (see `read_vocab`).
    config: the `MobileBertConfig` of the model the vocabulary belongs to.

  Returns:
    The tokens.

  Raises:
    FileNotFoundError: `vocab_file` does not exist.
    ValueError: not a BERT vocabulary (no special tokens, duplicates, ...) or
      its size differs from `config.vocab_size`.
  """
  tokens = read_vocab(vocab_file)
  if len(tokens) != config.vocab_size:
    raise ValueError(
        f"Vocab file {vocab_file} has {len(tokens)} tokens but the config's "
        f"vocab_size is {config.vocab_size}: the vocabulary does not belong "
        "to this model.")
  return tokens


def special_token_ids(tokenize) -> Dict[str, int]:
  """`tokenize.get_special_tokens_dict()` of a preprocessor (loaded or in
  memory), as Python ints."""
  return {k: int(v) for k, v in tokenize.get_special_tokens_dict().items()}


def special_tokens_dict(tokens: Sequence[str]) -> Dict[str, int]:
  """Returns the TF-Hub special-tokens dict of a validated vocabulary.

  Args:
    tokens: sequence of str, as returned by `read_vocab`.

  Returns:
    Dict with int values for `vocab_size`, `start_of_sequence_id` ([CLS]),
    `end_of_segment_id` ([SEP]), `padding_id` ([PAD]), `mask_id` ([MASK]).
  """
  index = {t: i for i, t in enumerate(tokens)}
  return dict(vocab_size=len(tokens),
              start_of_sequence_id=index["[CLS]"],
              end_of_segment_id=index["[SEP]"],
              padding_id=index["[PAD]"],
              mask_id=index["[MASK]"])


# === Normalization ===


def _normalize(strings: tf.Tensor, lower_case: bool) -> tf.Tensor:
  """Applies BERT's clean_text (+ accent strip and lower case) elementwise.

  Args:
    strings: valid UTF-8 string Tensor, any shape.
    lower_case: bool. Whether to strip accents and lower-case.

  Returns:
    A string Tensor of the same shape.
  """
  strings = tf.strings.regex_replace(strings, _WHITESPACE_PATTERN, " ")
  strings = tf.strings.regex_replace(strings, _REMOVED_PATTERN, "")
  if lower_case:
    strings = text.normalize_utf8(strings, "NFD")
    strings = tf.strings.regex_replace(strings, r"\p{Mn}", "")
    # BERT lower-cases char by char; ICU would turn a word-final capital
    # sigma into final "ς" instead of "σ".
    strings = tf.strings.regex_replace(strings, "\u03a3", "\u03c3")
    strings = tf.strings.lower(strings, encoding="utf-8")
  return strings


def _to_valid_utf8(strings: tf.Tensor) -> tf.Tensor:
  """Replaces invalid UTF-8 sequences by U+FFFD (later dropped)."""
  return tf.strings.unicode_transcode(
      strings, input_encoding="UTF-8", output_encoding="UTF-8",
      errors="replace", replacement_char=0xFFFD)


# === Layers ===


class BertWordpieceTokenizer(tf_keras.layers.Layer):
  """BERT tokenizer (normalization, word split, WordPiece) as a Keras layer.

  Gives the same ids as the original BERT and transformers'
  `BertTokenizerFast` (see the module docstring for the exceptions).

  Args:
    vocab_file: str. BERT vocab file, validated with `read_vocab`.
    lower_case: bool. Strip accents and lower-case, for uncased vocabularies.
    tokenize_with_offsets: bool. Whether calling returns
      `(ids, start_offsets, limit_offsets)` instead of just ids. Defaults to
      False.
    tokenizer: str. "fast" (`text.FastWordpieceTokenizer`, vocabulary compiled
      into the graph) or "bert" (`text.WordpieceTokenizer` on a lookup table
      read from the vocab file). Defaults to "fast".
    **kwargs: standard `Layer` arguments.

  Call args:
    inputs: string Tensor `[batch]`.

  Returns:
    int32 RaggedTensor `[batch, (words), (pieces)]`; with offsets also two
    int64 RaggedTensors of the same shape holding the start and limit byte
    offsets of each piece in the input string (for inputs with invalid
    UTF-8: in the string after replacing invalid bytes by U+FFFD).
  """

  def __init__(self, *, vocab_file: str, lower_case: bool,
               tokenize_with_offsets: bool = False, tokenizer: str = "fast",
               **kwargs):
    if tokenizer not in TOKENIZERS:
      raise ValueError(f"`tokenizer` must be one of {TOKENIZERS}. "
                       f"Received: tokenizer={tokenizer!r}")
    super().__init__(**kwargs)
    self._vocab = read_vocab(vocab_file)
    self._special_tokens_dict = special_tokens_dict(self._vocab)
    self.lower_case = bool(lower_case)
    self.tokenize_with_offsets = tokenize_with_offsets
    self.tokenizer = tokenizer
    # Cased word split only: normalization happened in `_normalize`.
    self._basic_tokenizer = _compat.bert_basic_tokenizer(lower_case=False)
    # 4 bytes per char: the char limit below is the one that matters.
    max_bytes = 4 * MAX_CHARS_PER_WORD
    if tokenizer == "fast":
      self._wordpiece = text.FastWordpieceTokenizer(
          vocab=self._vocab, token_out_type=tf.int32, max_bytes_per_word=max_bytes,
          no_pretokenization=True)
    else:
      initializer = tf.lookup.TextFileInitializer(
          vocab_file, key_dtype=tf.string,
          key_index=tf.lookup.TextFileIndex.WHOLE_LINE, value_dtype=tf.int64,
          value_index=tf.lookup.TextFileIndex.LINE_NUMBER)
      self._vocab_table = tf.lookup.StaticHashTable(initializer, -1)
      self._wordpiece = text.WordpieceTokenizer(
          self._vocab_table, token_out_type=tf.int64,
          max_bytes_per_word=max_bytes)

  @property
  def vocab_size(self) -> int:
    return len(self._vocab)

  def get_special_tokens_dict(self) -> Dict[str, int]:
    """Returns the special token ids (see `special_tokens_dict`)."""
    return dict(self._special_tokens_dict)

  def get_config(self):
    # Like Model Garden's tokenizers: skipped by SavedModel export; the
    # vocab path must not be baked into a config that is copied around.
    raise NotImplementedError("BertWordpieceTokenizer is not serializable to "
                              "a config; export it as a SavedModel.")

  def _words(self, normalized):
    """Splits normalized text into words; words too long become [UNK]."""
    words, begin, end = self._basic_tokenizer.tokenize_with_offsets(normalized)
    n_chars = tf.strings.length(words.flat_values, unit="UTF8_CHAR")
    too_long = n_chars > MAX_CHARS_PER_WORD
    # "[UNK]" is in the vocab and never produced by the word splitter (it
    # splits off brackets), so it maps to exactly the [UNK] id.
    words = words.with_flat_values(
        tf.where(too_long, tf.constant("[UNK]"), words.flat_values))
    return words, begin, end, words.with_flat_values(too_long)

  def _wordpieces(self, words):
    return tf.cast(self._wordpiece.tokenize(words), tf.int32)

  def call(self, inputs):
    batch_size = tf.shape(inputs)[0]

    def _reshape(rt):  # Works around broken shape inference (as Model Garden).
      return tf.RaggedTensor.from_row_splits(
          rt.values, tf.reshape(rt.row_splits, [batch_size + 1]))

    inputs = _to_valid_utf8(inputs)
    if not self.tokenize_with_offsets:
      words, _, _, _ = self._words(_normalize(inputs, self.lower_case))
      return _reshape(self._wordpieces(words))
    ids, starts, limits = self._tokenize_with_offsets(inputs)
    return _reshape(ids), _reshape(starts), _reshape(limits)

  def _tokenize_with_offsets(self, inputs):
    """Tokenizes and maps offsets back to the (valid UTF-8) input."""
    # Normalize character by character, so each normalized byte is known to
    # come from one input character.
    chars, char_starts = tf.strings.unicode_split_with_offsets(inputs, "UTF-8")
    char_starts = tf.cast(char_starts.flat_values, tf.int64)  # [chars]
    char_ends = char_starts + tf.cast(
        tf.strings.length(chars.flat_values), tf.int64)
    normalized_chars = _normalize(chars.flat_values, self.lower_case)
    new_len = tf.cast(tf.strings.length(normalized_chars), tf.int64)
    normalized = tf.strings.reduce_join(
        chars.with_flat_values(normalized_chars), axis=-1)  # [batch]
    # Positions in the concatenation of all normalized strings.
    new_ends = tf.cumsum(new_len)  # [chars], non-decreasing
    new_starts = new_ends - new_len
    row_base = tf.concat([tf.zeros([1], tf.int64), new_ends], 0)
    row_base = tf.gather(row_base, chars.row_splits[:-1])  # [batch]

    words, word_begin, word_end, too_long = self._words(normalized)
    ids, wp_begin, wp_end = self._wordpiece.tokenize_with_offsets(words)
    ids = tf.cast(ids, tf.int32)
    # The arithmetic runs on flat values, one entry per word piece: ragged
    # broadcasting would add shape checks per ragged dimension (measured:
    # 4,839 ops in this graph instead of 811), slowing tracing, saving,
    # loading and every call.
    piece_word = ids.values.value_rowids()  # [pieces] -> its word
    piece_row = tf.gather(words.value_rowids(), piece_word)  # -> its input
    piece_word_begin = tf.gather(word_begin.flat_values, piece_word)
    begin = piece_word_begin + wp_begin.flat_values
    # An [UNK] for a too-long word spans the whole word.
    end = tf.where(tf.gather(too_long.flat_values, piece_word),
                   tf.gather(word_end.flat_values, piece_word),
                   piece_word_begin + wp_end.flat_values)

    n_chars = tf.shape(new_ends, out_type=tf.int64)[0]
    table_pad = tf.zeros([1], tf.int64)  # A valid index if there are no chars.

    def _to_input_offsets(offsets, is_limit):
      pos = offsets + tf.gather(row_base, piece_row)
      if is_limit:  # The last input char whose output starts before `pos`.
        index = tf.searchsorted(new_starts, pos, side="left",
                               out_type=tf.int64) - 1
        table = char_ends
      else:  # The first input char whose output ends after `pos`.
        index = tf.searchsorted(new_ends, pos, side="right",
                               out_type=tf.int64)
        table = char_starts
      index = tf.clip_by_value(index, 0, tf.maximum(n_chars - 1, 0))
      table = tf.concat([table, table_pad], 0)
      return ids.with_flat_values(tf.gather(table, index))

    return ids, _to_input_offsets(begin, False), _to_input_offsets(end, True)


# === Preprocessor model ===


class _BertPackInputsWrapper(export_tfhub_lib.BertPackInputsSavedModelWrapper):
  """Model Garden's wrapper, made callable before saving too.

  The base class stores its tf.function as the instance attribute `__call__`,
  which Python ignores for `obj(...)`; after `hub.load` it is callable.
  """

  def __call__(self, inputs, seq_length=None):
    call = _compat.saved_call(self)
    if seq_length is None:
      return call(inputs)
    return call(inputs, seq_length=seq_length)


class _SpecialTokensDict(tf.Module):
  """Callable returning the special token ids; callable in memory and saved."""

  def __init__(self, special: Dict[str, int]):
    super().__init__()
    self._special = dict(special)

  @tf.function(input_signature=[])
  def __call__(self):
    return {k: tf.constant(v, tf.int32) for k, v in self._special.items()}


def build_preprocessor(vocab_file: str, do_lower_case: bool,
                       seq_length: int = 128, tokenizer: str = "fast",
                       tokenize_with_offsets: bool = True) -> tf_keras.Model:
  """Builds the preprocessor model with the TF-Hub text preprocessor API.

  Mirrors `official.nlp.tools.export_tfhub_lib.create_preprocessing` with our
  exact BERT tokenizer.

  Args:
    vocab_file: str. BERT vocab file (see `read_vocab`). It is read now (and,
      for `tokenizer="bert"`, when the lookup table initializes); the
      SavedModel written by `export.preprocessor_savedmodel` carries a copy
      as an asset.
    do_lower_case: bool. True for uncased vocabularies.
    seq_length: int. Output length of the root callable and default of
      `.bert_pack_inputs`. Defaults to 128.
    tokenizer: str. "fast" or "bert", see `BertWordpieceTokenizer`. Defaults
      to "fast".
    tokenize_with_offsets: bool. Whether to add `.tokenize_with_offsets`.
      Defaults to True.

  Returns:
    A `tf_keras.Model` from `[batch]` strings to the dict of int32
    `input_word_ids`, `input_mask`, `input_type_ids` `[batch, seq_length]`,
    with attributes `.tokenize` (+ `.get_special_tokens_dict`),
    `.tokenize_with_offsets`, `.bert_pack_inputs` and `.vocab_file` (a
    `tf.saved_model.Asset`).

  Raises:
    FileNotFoundError: if `vocab_file` does not exist.
    ValueError: for an invalid vocabulary, `seq_length` < 3 or an unknown
      `tokenizer`.
  """
  if isinstance(seq_length, bool) or not isinstance(seq_length, int) or (
      seq_length < 3):
    raise ValueError("`seq_length` must be an int >= 3 (room for [CLS] and "
                     f"two [SEP]). Received: seq_length={seq_length!r}")
  tokenize = BertWordpieceTokenizer(
      vocab_file=vocab_file, lower_case=do_lower_case,
      tokenize_with_offsets=False, tokenizer=tokenizer)
  special = tokenize.get_special_tokens_dict()

  sentences = tf_keras.layers.Input(shape=(), dtype=tf.string, name="sentences")
  tokens = tokenize(sentences)
  pack = nlp_layers.BertPackInputs(seq_length=seq_length,
                                   special_tokens_dict=special)
  preprocessor = tf_keras.Model(sentences, pack(tokens))

  preprocessor.tokenize = tf_keras.Model(sentences, tokens)
  preprocessor.tokenize.get_special_tokens_dict = _SpecialTokensDict(special)
  if tokenize_with_offsets:
    tokenize_offsets = BertWordpieceTokenizer(
        vocab_file=vocab_file, lower_case=do_lower_case,
        tokenize_with_offsets=True, tokenizer=tokenizer)
    preprocessor.tokenize_with_offsets = tf_keras.Model(
        sentences, list(tokenize_offsets(sentences)))
    preprocessor.tokenize_with_offsets.get_special_tokens_dict = (
        preprocessor.tokenize.get_special_tokens_dict)
  # Accepts 1 or 2 segments of ragged rank 1 or 2 and a `seq_length=` kwarg.
  preprocessor.bert_pack_inputs = _BertPackInputsWrapper(pack)
  preprocessor.vocab_file = tf.saved_model.Asset(vocab_file)
  return preprocessor
