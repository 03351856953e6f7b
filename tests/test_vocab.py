"""Tests for mobilebert_tf.vocab."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # pylint: disable=g-import-not-at-top

from mobilebert_tf import preprocessing  # pylint: disable=g-import-not-at-top
from mobilebert_tf import vocab  # pylint: disable=g-import-not-at-top
from tests import text_corpus  # pylint: disable=g-import-not-at-top

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@pytest.fixture(scope="module")
def corpus():
  return text_corpus.stdlib_docstring_lines(max_lines=1500)


def test_corpus_is_deterministic_and_clean():
  a = text_corpus.stdlib_docstring_lines(max_lines=300)
  assert a == text_corpus.stdlib_docstring_lines(max_lines=300)
  assert len(a) == 300
  assert all(line and line == line.strip() for line in a)
  assert len(set(a)) == len(a)


@pytest.mark.parametrize("do_lower_case", [True, False],
                         ids=["uncased", "cased"])
def test_learn_vocab_layout(corpus, tmp_path, do_lower_case):
  tokens = vocab.learn_wordpiece_vocab(
      corpus, vocab_size=800, do_lower_case=do_lower_case,
      learn_params=dict(lower_thresh=2))
  assert tokens[:5] == SPECIALS
  assert 300 < len(tokens) <= 800
  assert len(set(tokens)) == len(tokens)
  assert "##s" in tokens
  assert ("The" in tokens) != do_lower_case  # Upper case only when cased.
  path = vocab.write_vocab_file(tokens, str(tmp_path / "vocab.txt"))
  assert preprocessing.read_vocab(path) == tokens


def test_learn_vocab_custom_reserved_order(corpus):
  reserved = ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]", "[unused0]"]
  tokens = vocab.learn_wordpiece_vocab(corpus[:200], 300, True,
                                       reserved_tokens=reserved)
  assert tokens[:6] == reserved


@pytest.mark.parametrize("kwargs, match", [
    (dict(vocab_size=5), "`vocab_size` must be larger"),
    (dict(reserved_tokens=["[PAD]", "[UNK]"]), "missing"),
    (dict(reserved_tokens=SPECIALS + ["[PAD]"]), "duplicates"),
    (dict(lines=["", "  "]), "non-blank"),
], ids=["small_vocab", "missing_special", "dup_reserved", "no_text"])
def test_learn_vocab_errors(kwargs, match):
  args = dict(lines=["some text"], vocab_size=100, do_lower_case=True)
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    vocab.learn_wordpiece_vocab(**args)


@pytest.mark.parametrize("tokens, error, match", [
    ([], ValueError, "must not be empty"),
    (["a", "a"], ValueError, "unique"),
    (["a b"], ValueError, "whitespace"),
    ([""], ValueError, "non-empty"),
], ids=["empty", "dupes", "space", "blank"])
def test_write_vocab_errors(tmp_path, tokens, error, match):
  with pytest.raises(error, match=match):
    vocab.write_vocab_file(tokens, str(tmp_path / "v.txt"))


def test_write_vocab_missing_dir(tmp_path):
  with pytest.raises(FileNotFoundError, match="Parent directory"):
    vocab.write_vocab_file(SPECIALS, str(tmp_path / "no" / "v.txt"))
