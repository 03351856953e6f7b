"""Tests for mobilebert_tf.preprocessing (TF-Hub text preprocessor API).

Reference: transformers' `BertTokenizerFast` with the same vocabulary, learned
from standard library docstrings by `mobilebert_tf.vocab` plus a few
multilingual tokens.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# pylint: disable=g-import-not-at-top
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
from transformers import BertTokenizerFast

from export import preprocessor_savedmodel
from mobilebert_tf import MobileBertConfig
from mobilebert_tf import preprocessing
from mobilebert_tf import vocab
from tests import text_corpus

NUM_LINES = 3500
# Multilingual tokens appended to the learned (ASCII-only) vocabularies.
EXTRA_TOKENS = ["é", "##é", "e", "##e", "中", "文", "字", "符", "ü", "##ü",
                "cafe", "café", "Café", "naïve", "ß", "ﬁ", "σ", "ς", "##σ", "##ς",
                "ο", "##ο", "δ", "##δ", "😀", "İ"]
HARD_CASES = [
    "Café naïve résumé CAFÉ",  # accents: kept when cased, stripped uncased
    "中文字符 mixed中文",  # CJK: one token per character
    "emoji 😀 here😀",
    "ctrl\x00\x01\x07x\x1b y",  # control characters are dropped
    "tab\tnbsp\u00a0zw\u200bj\u200dx \ufeffbom",  # odd and zero-width spaces
    "x\r\ny\u2028z\u3000w\u0085v\x0bu",
    "a" * 201,  # words over 100 characters -> [UNK]
    "é" * 60,  # ... counted in characters, not bytes
    "b" * 100,
    "",
    "   ",
    "İstanbul ß ﬁne Ａ",  # lower-casing without NFKC folding
    "\ufffdrep",
    "a\u0301b",  # combining accent
    "ΟΔΟΣ ΟΔΟΣ.",  # no final-sigma rule, as BERT
    "def f(x): return x**2  # ok?!",
]


def _hf_reference(vocab_file, do_lower_case):
  return BertTokenizerFast(vocab_file=vocab_file, do_lower_case=do_lower_case)


@pytest.fixture(scope="module")
def corpus():
  lines = text_corpus.stdlib_docstring_lines(max_lines=NUM_LINES)
  assert len(lines) == NUM_LINES
  return lines


@pytest.fixture(scope="module")
def vocab_files(corpus, tmp_path_factory):
  """{do_lower_case: vocab path}, ~2000 learned tokens + EXTRA_TOKENS."""
  root = tmp_path_factory.mktemp("vocab")
  files = {}
  for do_lower_case in (True, False):
    tokens = vocab.learn_wordpiece_vocab(
        corpus, vocab_size=2000, do_lower_case=do_lower_case,
        learn_params=dict(lower_thresh=2))
    tokens += [t for t in EXTRA_TOKENS if t not in tokens]
    name = "uncased.txt" if do_lower_case else "cased.txt"
    files[do_lower_case] = vocab.write_vocab_file(tokens, str(root / name))
  return files


@pytest.fixture(scope="module")
def preprocessors(vocab_files):
  """{do_lower_case: in-memory preprocessor with seq_length 32}."""
  return {lc: preprocessing.build_preprocessor(path, lc, seq_length=32)
          for lc, path in vocab_files.items()}


CASES = pytest.mark.parametrize("do_lower_case", [True, False],
                                ids=["uncased", "cased"])


# === Tokenization parity with BertTokenizerFast ===


@CASES
def test_tokenize_matches_hf(corpus, vocab_files, preprocessors,
                             do_lower_case):
  hf = _hf_reference(vocab_files[do_lower_case], do_lower_case)
  lines = corpus + HARD_CASES
  expected = hf(lines, add_special_tokens=False)["input_ids"]
  tokens = preprocessors[do_lower_case].tokenize(tf.constant(lines))
  assert tokens.shape.rank == 3
  got = tokens.merge_dims(1, -1).to_list()
  mismatches = [(line, e, g) for line, e, g in zip(lines, expected, got)
                if e != g]
  assert not mismatches, mismatches[:3]


@CASES
def test_root_matches_hf_packed(corpus, vocab_files, preprocessors,
                                do_lower_case):
  hf = _hf_reference(vocab_files[do_lower_case], do_lower_case)
  lines = corpus[:500] + HARD_CASES
  expected = hf(lines, truncation=True, max_length=32, padding="max_length",
                return_tensors="np")
  got = preprocessors[do_lower_case](tf.constant(lines))
  for key, hf_key in [("input_word_ids", "input_ids"),
                      ("input_mask", "attention_mask"),
                      ("input_type_ids", "token_type_ids")]:
    assert got[key].dtype == tf.int32
    np.testing.assert_array_equal(got[key].numpy(), expected[hf_key],
                                  err_msg=key)


@pytest.mark.parametrize("line, cased, uncased", [
    ("é", ["é"], ["e"]),
    ("Café", ["Café"], ["cafe"]),
    ("中文", ["中", "文"], ["中", "文"]),
    ("a" * 101, ["[UNK]"], ["[UNK]"]),
], ids=["accent", "accent_word", "cjk", "long_word"])
def test_multilingual_tokens(vocab_files, preprocessors, line, cased,
                             uncased):
  for do_lower_case, expected in ((False, cased), (True, uncased)):
    tokens = preprocessing.read_vocab(vocab_files[do_lower_case])
    ids = preprocessors[do_lower_case].tokenize(tf.constant([line]))
    assert [tokens[i] for i in ids.flat_values.numpy()] == expected


def test_bert_tokenizer_option_matches_fast(corpus, vocab_files):
  lines = tf.constant(corpus[:300] + HARD_CASES)
  layers = [preprocessing.BertWordpieceTokenizer(
      vocab_file=vocab_files[False], lower_case=False, tokenizer=name)
            for name in preprocessing.TOKENIZERS]
  fast, bert = [layer(lines).to_list() for layer in layers]
  assert fast == bert


@CASES
def test_offsets_match_hf(corpus, vocab_files, preprocessors, do_lower_case):
  hf = _hf_reference(vocab_files[do_lower_case], do_lower_case)
  lines = corpus[:300] + HARD_CASES
  ids, starts, limits = preprocessors[do_lower_case].tokenize_with_offsets(
      tf.constant(lines))
  assert ids.to_list() == preprocessors[do_lower_case].tokenize(
      tf.constant(lines)).to_list()
  assert starts.dtype == tf.int64 and limits.dtype == tf.int64
  expected = hf(lines, add_special_tokens=False, return_offsets_mapping=True)
  for i, line in enumerate(lines):
    byte_pos = [len(line[:k].encode("utf-8")) for k in range(len(line) + 1)]
    want = [(byte_pos[s], byte_pos[e])
            for s, e in expected["offset_mapping"][i]]
    got = list(zip(starts[i].flat_values.numpy().tolist(),
                   limits[i].flat_values.numpy().tolist()))
    assert got == want, line


def test_offsets_add_a_fixed_set_of_ops(vocab_files):
  """Offsets cost a per-character normalization and two searches on flat
  values: a few hundred ops, whatever the ragged rank. Arithmetic on ragged
  tensors instead (broadcasting, `tf.where`) adds shape checks per ragged
  dimension: it made this graph 16x the plain tokenizer's (4,839 ops against
  299), slowing every trace, save, load and call."""
  def ops(with_offsets):
    tokenizer = preprocessing.BertWordpieceTokenizer(
        vocab_file=vocab_files[True], lower_case=True,
        tokenize_with_offsets=with_offsets)
    graph = tf.function(tokenizer).get_concrete_function(
        tf.TensorSpec([None], tf.string)).graph
    return len(graph.get_operations())

  assert ops(True) < 4 * ops(False)


@pytest.mark.parametrize("raw, decoded", [
    (b"caf\xc3", "caf"),  # truncated sequence
    (b"a\xffb c", "ab c"),  # invalid byte inside a word: dropped
    (b"\xed\xa0\x80x", "x"),  # encoded surrogate
], ids=["truncated", "invalid_byte", "surrogate"])
def test_invalid_utf8_is_dropped(vocab_files, preprocessors, raw, decoded):
  """Invalid UTF-8 behaves as U+FFFD, which BERT's clean_text drops."""
  hf = _hf_reference(vocab_files[True], True)
  assert raw.decode("utf-8", errors="replace").replace("\ufffd", "") == decoded
  expected = hf(raw.decode("utf-8", errors="replace"),
                add_special_tokens=False)["input_ids"]
  got = preprocessors[True].tokenize(tf.constant([raw]))
  assert got.flat_values.numpy().tolist() == expected
  _, starts, _ = preprocessors[True].tokenize_with_offsets(tf.constant([raw]))
  assert starts.flat_values.shape[0] == len(expected)


def test_special_tokens_literal_text_is_not_special(vocab_files,
                                                    preprocessors):
  """Documented difference: "[MASK]" in text is ordinary text, as in BERT."""
  hf = _hf_reference(vocab_files[True], True)
  ids = preprocessors[True].tokenize(tf.constant(["[MASK]"]))
  assert ids.flat_values.numpy().tolist() != hf(
      "[MASK]", add_special_tokens=False)["input_ids"]
  assert 4 not in ids.flat_values.numpy().tolist()  # [MASK] is id 4


def test_special_tokens_dict(preprocessors):
  special = preprocessors[True].tokenize.get_special_tokens_dict()
  special = {k: int(v) for k, v in special.items()}
  assert special == dict(vocab_size=special["vocab_size"],
                         padding_id=0, start_of_sequence_id=2,
                         end_of_segment_id=3, mask_id=4)
  assert special["vocab_size"] > 1000


# === bert_pack_inputs ===

CLS, SEP, PAD = 2, 3, 0


@pytest.mark.parametrize("segments, seq_length, word_ids, type_ids", [
    ([[[10, 11]]], 6, [CLS, 10, 11, SEP, PAD, PAD], [0] * 6),
    ([[[10, 11]], [[20]]], 7, [CLS, 10, 11, SEP, 20, SEP, PAD],
     [0, 0, 0, 0, 1, 1, 0]),
    # Round robin: 5 + 4 tokens into 8 - 3 = 5 slots -> 3 + 2.
    ([[[10, 11, 12, 13, 14]], [[20, 21, 22, 23]]], 8,
     [CLS, 10, 11, 12, SEP, 20, 21, SEP], [0, 0, 0, 0, 0, 1, 1, 1]),
    # The short segment keeps everything, the long one gets the rest.
    ([[[10, 11, 12, 13, 14]], [[20]]], 7,
     [CLS, 10, 11, 12, SEP, 20, SEP], [0, 0, 0, 0, 0, 1, 1]),
    ([[[10, 11, 12, 13, 14]]], 4, [CLS, 10, 11, SEP], [0] * 4),
    ([[[]], [[]]], 4, [CLS, SEP, SEP, PAD], [0, 0, 1, 0]),
], ids=["one", "two", "round_robin", "uneven", "truncate_one", "empty"])
def test_bert_pack_inputs(preprocessors, segments, seq_length, word_ids,
                          type_ids):
  ragged = [tf.ragged.constant(s, dtype=tf.int32, ragged_rank=1)
            for s in segments]
  got = preprocessors[True].bert_pack_inputs(ragged, seq_length=seq_length)
  mask = [1 if t != PAD else 0 for t in word_ids]
  np.testing.assert_array_equal(got["input_word_ids"].numpy(), [word_ids])
  np.testing.assert_array_equal(got["input_type_ids"].numpy(), [type_ids])
  np.testing.assert_array_equal(got["input_mask"].numpy(), [mask])


def test_bert_pack_inputs_from_tokenize_default_length(preprocessors):
  pre = preprocessors[True]
  sentences = tf.constant(["hello world", "the json module"])
  packed = pre.bert_pack_inputs([pre.tokenize(sentences)])
  root = pre(sentences)
  for key in root:
    np.testing.assert_array_equal(packed[key].numpy(), root[key].numpy())
  assert root["input_word_ids"].shape == (2, 32)


# === Export round trip ===


@pytest.fixture(scope="module")
def exported(vocab_files, tmp_path_factory):
  """Exports from a vocab copy that is deleted afterwards."""
  root = tmp_path_factory.mktemp("export")
  source_dir = root / "source_vocab_dir_xyz"
  source_dir.mkdir()
  vocab_file = str(source_dir / "vocab.txt")
  shutil.copyfile(vocab_files[True], vocab_file)
  export_dir = str(root / "preprocessor")
  result = preprocessor_savedmodel.export_preprocessor(vocab_file, True, export_dir,
                                             seq_length=32)
  assert result == export_dir
  shutil.rmtree(source_dir)
  return export_dir, str(source_dir)


@pytest.fixture(scope="module")
def loaded(exported):
  return hub.load(exported[0])


def test_export_no_source_path_and_asset(exported):
  export_dir, source_dir = exported
  with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
    pb = f.read()
  assert source_dir.encode() not in pb
  assert b"source_vocab_dir_xyz" not in pb
  assert os.listdir(os.path.join(export_dir, "assets")) == ["vocab.txt"]
  # No temporary left beside it.
  assert not [n for n in os.listdir(os.path.dirname(export_dir))
              if n.startswith(".")]


def test_export_hub_load_matches_in_memory(loaded, corpus, preprocessors):
  pre = preprocessors[True]
  lines = tf.constant(corpus[:50] + HARD_CASES)
  want, got = pre(lines), loaded(lines)
  for key in want:
    np.testing.assert_array_equal(got[key].numpy(), want[key].numpy())
  assert loaded.tokenize(lines).to_list() == pre.tokenize(lines).to_list()
  for a, b in zip(loaded.tokenize_with_offsets(lines),
                  pre.tokenize_with_offsets(lines)):
    assert a.to_list() == b.to_list()
  special = {k: int(v) for k, v in
             loaded.tokenize.get_special_tokens_dict().items()}
  assert special == pre.tokenize.get_special_tokens_dict()
  assert os.path.basename(loaded.vocab_file.asset_path.numpy()) == (
      b"vocab.txt")
  # TF Serving's view: the signature names the three encoder inputs.
  serving = loaded.signatures["serving_default"]
  assert set(serving.structured_outputs) == {
      "input_word_ids", "input_mask", "input_type_ids"}
  got = serving(sentences=lines)
  for key in want:
    np.testing.assert_array_equal(got[key].numpy(), want[key].numpy())


@pytest.mark.parametrize("seq_length", [5, 16, 200])
def test_export_bert_pack_inputs_keras_layer(loaded, seq_length):
  tokenize = hub.KerasLayer(loaded.tokenize)
  pack = hub.KerasLayer(loaded.bert_pack_inputs,
                        arguments=dict(seq_length=seq_length))
  a = tf.constant(["the first segment is long enough", "short"])
  b = tf.constant(["second", "the other segment is also long"])
  got = pack([tokenize(a), tokenize(b)])
  assert got["input_word_ids"].shape == (2, seq_length)
  ids_a, ids_b = [loaded.tokenize(x).merge_dims(1, -1).to_list()
                  for x in (a, b)]
  for row in range(2):
    words = got["input_word_ids"][row].numpy().tolist()
    n_a, n_b = len(ids_a[row]), len(ids_b[row])
    budget = seq_length - 3
    # Round robin: each side keeps min(own, max(half, budget - other)).
    keep_a = min(n_a, max((budget + 1) // 2, budget - n_b))
    keep_b = min(n_b, budget - keep_a)
    expected = ([CLS] + ids_a[row][:keep_a] + [SEP] + ids_b[row][:keep_b] +
                [SEP])
    expected += [PAD] * (seq_length - len(expected))
    assert words == expected


# === Errors ===


def test_export_refuses_existing_dir(exported, vocab_files):
  export_dir, _ = exported
  with pytest.raises(FileExistsError, match="overwrite=True"):
    preprocessor_savedmodel.export_preprocessor(vocab_files[True], True, export_dir)


@pytest.mark.parametrize("content, match", [
    ("", "must not be empty"),
    ("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n", "missing \\[MASK\\]"),
    ("hello\nworld\n", "missing \\[PAD\\] \\[UNK\\] \\[CLS\\] \\[SEP\\]"),
    ("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\na\n", "duplicate.*'a'"),
    ("[PAD]\n\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n", "blank token at line"),
], ids=["empty", "no_mask", "no_specials", "duplicate", "blank_line"])
def test_bad_vocab(tmp_path, content, match):
  path = tmp_path / "vocab.txt"
  path.write_text(content, encoding="utf-8")
  with pytest.raises(ValueError, match=match):
    preprocessing.read_vocab(str(path))
  with pytest.raises(ValueError, match=match):
    preprocessing.build_preprocessor(str(path), True)


def test_check_vocab(vocab_files):
  tokens = preprocessing.read_vocab(vocab_files[True])
  config = MobileBertConfig(vocab_size=len(tokens))
  assert preprocessing.check_vocab(vocab_files[True], config) == tokens
  other = config.replace(vocab_size=len(tokens) + 1)
  with pytest.raises(ValueError, match=f"has {len(tokens)} tokens but the "
                     f"config's vocab_size is {len(tokens) + 1}"):
    preprocessing.check_vocab(vocab_files[True], other)


def test_missing_vocab_file(tmp_path):
  missing = str(tmp_path / "nope.txt")
  with pytest.raises(FileNotFoundError, match="nope.txt"):
    preprocessing.build_preprocessor(missing, True)
  with pytest.raises(FileNotFoundError, match="nope.txt"):
    preprocessor_savedmodel.export_preprocessor(missing, True, str(tmp_path / "out"))
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kwargs, match", [
    (dict(seq_length=2), "`seq_length` must be an int >= 3"),
    (dict(seq_length=8.0), "`seq_length` must be an int >= 3"),
    (dict(tokenizer="slow"), "`tokenizer` must be one of"),
], ids=["short", "float", "tokenizer"])
def test_bad_arguments(vocab_files, kwargs, match):
  with pytest.raises(ValueError, match=match):
    preprocessing.build_preprocessor(vocab_files[True], True, **kwargs)
