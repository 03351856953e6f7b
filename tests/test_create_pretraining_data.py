"""Tests for `training.pretraining_instances` and its CLI
`python -m training.create_pretraining_data`."""

import collections
import glob
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from training import create_pretraining_data as cpd
from training import pretraining_instances as pi
from training import records
from tests import workspace

CLS, SEP, MASK = 2, 3, 4
# Large, so that a random replacement equals the original with probability
# 1e-5 and every corpus piece below has an id of its own.
VOCAB_SIZE = 100_000
FIRST_PIECE = 5


def _vocab(continuation=()):
  flags = [False] * VOCAB_SIZE
  for i in continuation:
    flags[i] = True
  return pi.MaskingVocab(cls=CLS, sep=SEP, mask=MASK, size=VOCAB_SIZE,
                         continuation=tuple(flags))


def _documents(num_documents, seed=0, min_sentences=1, max_sentences=12,
               max_len=10):
  """Documents whose pieces are consecutive ids, distinct in the corpus: an
  id tells its document and its place."""
  rng = np.random.default_rng(seed)
  documents, next_id = [], FIRST_PIECE
  for _ in range(num_documents):
    document = []
    for _ in range(rng.integers(min_sentences, max_sentences + 1)):
      length = int(rng.integers(1, max_len + 1))
      document.append(list(range(next_id, next_id + length)))
      next_id += length
    documents.append(document)
  return documents


def _document_of(documents):
  """id -> document index."""
  owner = {}
  for d, document in enumerate(documents):
    for sentence in document:
      for piece in sentence:
        owner[piece] = d
  return owner


def _original(instance):
  tokens = instance.tokens.copy()
  tokens[instance.positions] = instance.labels
  return tokens


def _instances(documents, seed=1, dupe_factor=2, vocab=None, **options):
  options = pi.InstanceOptions(**dict(dict(max_seq_length=48,
                                           max_predictions_per_seq=48),
                                      **options))
  return pi.create_instances(documents, vocab or _vocab(), options,
                             dupe_factor, random.Random(seed))


@pytest.fixture(scope="module")
def corpus():
  # Long documents: a chunk (8 sentences on average) rarely has a single
  # sentence, which would force a random next segment.
  return _documents(80, min_sentences=30, max_sentences=60)


@pytest.fixture(scope="module")
def instances(corpus):
  return _instances(corpus, dupe_factor=5, short_seq_prob=0.0)


# === The algorithm ===


def test_pairs_and_truncation_equal_model_gardens(monkeypatch):
  """Chunks, A/B splits, random next documents and truncation draw exactly
  what tf-models-official's port of google-research/bert draws (masking,
  whose draws differ there, is switched off in both)."""
  from official.nlp.data import create_pretraining_data as reference  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(reference, "create_masked_lm_predictions",
                      lambda tokens, *args, **kwargs: (tokens, [], []))
  monkeypatch.setattr(pi, "create_masked_lm_predictions",
                      lambda tokens, *args: (tokens, [], []))
  documents = _documents(40, seed=3, max_len=14)
  # Short sequences: many truncations; short targets half the time.
  options = pi.InstanceOptions(max_seq_length=20, short_seq_prob=0.5)
  names = {CLS: "[CLS]", SEP: "[SEP]"}
  compared = truncated = 0
  for index in range(len(documents)):
    ours = pi.create_instances_from_document(
        documents, index, _vocab(), options, random.Random(index))
    theirs = reference.create_instances_from_document(
        documents, index, 20, 0.5, 0.15, 20, [], random.Random(index))
    assert len(ours) == len(theirs)
    for mine, other in zip(ours, theirs):
      assert [names.get(t, t) for t in mine.tokens.tolist()] == other.tokens
      segments = np.zeros(len(mine.tokens), int)
      segments[mine.num_a + 2:] = 1
      assert segments.tolist() == other.segment_ids
      assert mine.is_random_next == other.is_random_next
      compared += 1
      truncated += len(mine.tokens) == 20
  assert compared > 100 and truncated > 20


def test_layout_lengths_and_truncation(instances):
  assert len(instances) > 2000
  lengths = [len(x.tokens) for x in instances]
  assert max(lengths) == 48  # Truncated to max_seq_length ...
  assert min(lengths) >= 5
  for x in instances:
    original = _original(x)
    assert original[0] == CLS and original[x.num_a + 1] == SEP
    assert original[-1] == SEP
    assert (np.flatnonzero(original == SEP) == [x.num_a + 1,
                                                 len(original) - 1]).all()
    assert x.num_a >= 1 and len(original) - x.num_a - 3 >= 1
    # Each segment is a run of consecutive sentences (ids): truncation only
    # drops pieces at the ends.
    a, b = original[1:x.num_a + 1], original[x.num_a + 2:-1]
    assert (np.diff(a) == 1).all() and (np.diff(b) == 1).all()


def test_segments_come_from_one_document_or_another(corpus, instances):
  owner = _document_of(corpus)
  counts = collections.Counter()
  for x in instances:
    original = _original(x)
    a, b = original[1:x.num_a + 1], original[x.num_a + 2:-1]
    docs_a, docs_b = {owner[t] for t in a}, {owner[t] for t in b}
    assert len(docs_a) == 1 and len(docs_b) == 1
    if x.is_random_next:
      assert docs_a != docs_b
    else:
      assert docs_a == docs_b
      assert a.max() < b.min()  # B is the text after A.
      counts["next"] += 1
    counts[x.is_random_next] += 1
  # No short targets, sentences shorter than the target: a chunk has one
  # sentence (forced random) only at a document's end, rarely; else the
  # label is random with probability 0.5.
  fraction = counts[True] / len(instances)
  sigma = 0.5 / np.sqrt(len(instances))
  assert 0.5 - 3 * sigma < fraction < 0.5 + 0.04, fraction


def test_masking_counts_and_80_10_10(instances):
  shown, original, predicted, total = [], [], 0, 0
  for x in instances:
    tokens = _original(x)
    expected = min(48, max(1, int(round(len(tokens) * 0.15))))
    assert len(x.positions) == expected
    assert (np.diff(x.positions) > 0).all()
    assert not np.isin(tokens[x.positions], [CLS, SEP]).any()
    unpredicted = np.setdiff1d(np.arange(len(tokens)), x.positions)
    np.testing.assert_array_equal(x.tokens[unpredicted], tokens[unpredicted])
    shown.append(x.tokens[x.positions])
    original.append(x.labels)
    predicted += len(x.positions)
    total += len(tokens)
  assert abs(predicted / total - 0.15) < 0.01
  shown, original = np.concatenate(shown), np.concatenate(original)
  assert len(shown) > 10_000
  is_mask = shown == MASK
  kept = shown == original
  replaced = ~is_mask & ~kept
  assert abs(is_mask.mean() - 0.8) < 0.03
  assert abs(kept.mean() - 0.1) < 0.03
  assert abs(replaced.mean() - 0.1) < 0.03
  # Replacements are uniform over the vocabulary, as in the original.
  assert len(np.unique(shown[replaced])) > 0.9 * replaced.sum()
  assert shown[replaced].max() > VOCAB_SIZE // 2


def test_max_predictions_caps_the_count(corpus):
  for x in _instances(corpus[:50], max_predictions_per_seq=3):
    assert len(x.positions) == min(3, max(1, round(len(x.tokens) * 0.15)))


def test_whole_word_masking_never_splits_a_word():
  # Every third piece starts a word; the next two are "##" pieces.
  documents = _documents(150, seed=5, max_len=12)
  continuation = [i for i in range(FIRST_PIECE, 20_000)
                  if (i - FIRST_PIECE) % 3]
  vocab = _vocab(continuation)
  multi_piece_words_masked = 0
  for x in _instances(documents, vocab=vocab, do_whole_word_mask=True):
    tokens = _original(x)
    masked = set(x.positions.tolist())
    num_to_predict = min(48, max(1, int(round(len(tokens) * 0.15))))
    assert len(masked) <= num_to_predict
    words, word = [], []
    for i, t in enumerate(tokens):
      if t in (CLS, SEP) or not vocab.continuation[t] or not word:
        if word:
          words.append(word)
        word = [] if t in (CLS, SEP) else [i]
      else:
        word.append(i)
    for word in words:
      hits = len(masked.intersection(word))
      assert hits in (0, len(word)), (tokens, word, masked)
      multi_piece_words_masked += hits > 1
  assert multi_piece_words_masked > 500
  # Without the flag, pieces are masked one by one: words get split.
  split = 0
  for x in _instances(documents[:50], vocab=vocab):
    masked = set(x.positions.tolist())
    split += any(p + 1 not in masked and vocab.continuation[
        _original(x)[p + 1]] for p in masked if p + 1 < len(x.tokens))
  assert split > 50


def test_equal_seeds_give_equal_instances(corpus):
  def key(items):
    return [(x.tokens.tolist(), x.num_a, x.positions.tolist(),
             x.labels.tolist(), x.is_random_next) for x in items]
  first = key(_instances(corpus[:40], seed=9))
  assert first == key(_instances(corpus[:40], seed=9))
  assert first != key(_instances(corpus[:40], seed=10))


def test_features_are_padded_records(instances):
  x = instances[0]
  features = pi.instance_features(x, 64, 50)
  assert set(features) == set(records.RECORD_TO_MODEL_NAMES.values())
  n, p = len(x.tokens), len(x.positions)
  assert features["input_word_ids"][:n].tolist() == x.tokens.tolist()
  assert not features["input_word_ids"][n:].any()
  assert features["input_mask"].sum() == n
  assert features["input_type_ids"].sum() == n - x.num_a - 2
  assert features["masked_lm_weights"].sum() == p
  assert features["masked_lm_weights"].dtype == np.float32
  assert features["next_sentence_labels"].tolist() == [int(x.is_random_next)]
  with pytest.raises(ValueError, match="does not fit"):
    pi.instance_features(x, n - 1, 50)


def test_options_are_checked():
  with pytest.raises(ValueError, match="max_seq_length"):
    pi.InstanceOptions(max_seq_length=4)
  with pytest.raises(ValueError, match="masked_lm_prob"):
    pi.InstanceOptions(masked_lm_prob=0.0)
  with pytest.raises(ValueError, match="dupe_factor"):
    _instances([[[5, 6]]], dupe_factor=0)
  with pytest.raises(ValueError, match=r"\[MASK\]"):
    pi.MaskingVocab.from_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"])


# === Tokenizer and command line ===

WORDS = [f"w{i}" for i in range(60)]
SUFFIXES = ["##s", "##ed", "##ing"]


def _write_corpus(path, num_documents, seed=0, invalid_line=False):
  rng = random.Random(seed)
  lines = []
  for d in range(num_documents):
    for _ in range(rng.randint(1, 8)):
      lines.append(" ".join(
          rng.choice(WORDS) + rng.choice(["", "", "s", "ed", "ing"])
          for _ in range(rng.randint(2, 14))))
    lines.append("")
  data = "\n".join(lines).encode()
  if invalid_line:
    data = b"w1 w2 \xff\xfe w3\n" + data
  path.write_bytes(data)
  return str(path)


@pytest.fixture(scope="module")
def text_files(tmp_path_factory):
  root = tmp_path_factory.mktemp("text")
  vocab = root / "vocab.txt"
  vocab.write_text("".join(
      t + "\n" for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] +
      WORDS + SUFFIXES))
  return dict(vocab=str(vocab),
              corpus=_write_corpus(root / "corpus.txt", 40, invalid_line=True),
              big=_write_corpus(root / "big.txt", 120, seed=1),
              root=root)


@pytest.fixture(scope="module")
def tokenizer(text_files):
  return pi.LineTokenizer(text_files["vocab"], do_lower_case=True,
                          batch_size=3)


def test_line_tokenizer_gives_the_preprocessors_ids(tokenizer, text_files):
  from mobilebert_tf import preprocessing  # pylint: disable=g-import-not-at-top
  lines = ["w1 w2s", "W3ing w59ed", "", "\u00e9 w4", "w5 w6 w7 w8"]
  expected = preprocessing.BertWordpieceTokenizer(
      vocab_file=text_files["vocab"], lower_case=True)(
          tf.constant(lines)).merge_dims(1, 2).to_list()
  assert tokenizer(lines) == expected  # In batches of 3.
  assert tokenizer(lines)[1] == [5 + 3, 65 + 2, 5 + 59, 65 + 1]


def _main(*args):
  return cpd.main(["create_pretraining_data", *args])


def _common(text_files, out, *extra):
  return [f"--input_file={text_files['corpus']}",
          f"--vocab_file={text_files['vocab']}", f"--output_file={out}",
          "--max_seq_length=32", "--max_predictions_per_seq=5",
          "--dupe_factor=2", *extra]


def test_cli_writes_records_model_gardens_loader_reads(text_files, tmp_path,
                                                       capsys):
  from official.nlp.data import pretrain_dataloader  # pylint: disable=g-import-not-at-top
  outs = [str(tmp_path / "out" / f"train-{i}.tfrecord") for i in range(2)]
  assert _main(*_common(text_files, ",".join(outs), "--num_workers=1")) == 0
  captured = capsys.readouterr()
  assert "documents: 40," in captured.out
  assert "invalid UTF-8 lines: 1" in captured.out
  assert "not valid UTF-8 (first: " in captured.err
  assert sorted(os.listdir(tmp_path / "out")) == ["train-0.tfrecord",
                                                  "train-1.tfrecord"]
  config = pretrain_dataloader.BertPretrainDataConfig(
      input_path=",".join(outs), seq_length=32, max_predictions_per_seq=5,
      global_batch_size=4, is_training=False, drop_remainder=False)
  batches = list(pretrain_dataloader.BertPretrainDataLoader(config).load())
  expected = {"input_word_ids": (tf.int32, 32), "input_mask": (tf.int32, 32),
              "input_type_ids": (tf.int32, 32),
              "masked_lm_positions": (tf.int32, 5),
              "masked_lm_ids": (tf.int32, 5),
              "masked_lm_weights": (tf.float32, 5),
              "next_sentence_labels": (tf.int32, 1)}
  assert {k: (v.dtype, v.shape[1]) for k, v in batches[0].items()} == expected
  count = sum(int(b["input_mask"].shape[0]) for b in batches)
  assert f"Wrote {count} instances to 2 file(s)" in captured.out
  rows = list(records.read_dataset(outs[0], 32, 5).as_numpy_iterator())
  assert len(rows) in (count // 2, count - count // 2)
  labels = np.concatenate([b["next_sentence_labels"].numpy() for b in batches])
  assert f"{100 * labels.mean():.1f}%" in captured.out
  for b in batches:
    ids, weights = b["input_word_ids"].numpy(), b["masked_lm_weights"].numpy()
    assert (ids[:, 0] == CLS).all()
    assert ((weights.sum(-1) >= 1) & (weights.sum(-1) <= 5)).all()
    labels = b["masked_lm_ids"].numpy()[weights > 0]
    assert not np.isin(labels, [CLS, SEP]).any()
    assert (labels >= 5).all()  # Word pieces of the corpus.


def _no_output(directory):
  return not os.path.exists(directory) or not [
      p for p in os.listdir(directory)]


@pytest.mark.parametrize("case", ["no_match", "empty", "no_mask_token",
                                  "short_seq", "exists", "dir"])
def test_bad_input_exits_2_with_one_line(text_files, tmp_path, capsys, case):
  out_dir = tmp_path / "out"
  out = str(out_dir / "train.tfrecord")
  args = _common(text_files, out)
  if case == "no_match":
    args[0] = f"--input_file={text_files['corpus']},{tmp_path}/nothing*.txt"
    message = "no file matches"
  elif case == "empty":
    (tmp_path / "empty.txt").write_text("\n\n  \n")
    args[0] = f"--input_file={tmp_path / 'empty.txt'}"
    message = "no text in"
  elif case == "no_mask_token":
    (tmp_path / "v.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nw1\n")
    args[1] = f"--vocab_file={tmp_path / 'v.txt'}"
    message = "missing [MASK]"
  elif case == "short_seq":
    args.append("--max_seq_length=4")
    message = "--max_seq_length must be >= 5"
  elif case == "exists":
    out_dir.mkdir()
    (out_dir / "train.tfrecord").write_text("old")
    message = "already exists; pass --overwrite"
  else:
    args[0] = f"--input_file={tmp_path}"
    message = "is a directory"
  assert _main(*args) == 2
  captured = capsys.readouterr()
  lines = captured.err.strip().splitlines()
  assert len(lines) == 1 and message in lines[0], captured.err
  assert lines[0].startswith(cpd._PROGRAM + ": error: ")
  if case == "exists":
    assert os.listdir(out_dir) == ["train.tfrecord"]
    assert (out_dir / "train.tfrecord").read_text() == "old"
  else:
    assert _no_output(out_dir)


def test_too_few_predictions_for_the_rate_is_a_warning(text_files, tmp_path,
                                                        capsys):
  out = str(tmp_path / "train.tfrecord")
  # round(64 * 0.15) = 10 > 3.
  assert _main(*_common(text_files, out, "--max_seq_length=64",
                        "--max_predictions_per_seq=3")) == 0
  err = capsys.readouterr().err
  assert "warning: --max_predictions_per_seq=3 is less than" in err
  rows = list(records.read_dataset(out, 64, 3).as_numpy_iterator())
  assert max(r["masked_lm_weights"].sum() for r in rows) == 3


def test_interrupted_run_leaves_nothing_and_stale_files_go(
    text_files, tmp_path, monkeypatch):
  out_dir = tmp_path / "out"
  outs = [str(out_dir / "a.tfrecord"), str(out_dir / "b.tfrecord")]
  calls = []
  real = cpd.BufferProcessor.__call__

  def killed_on_the_third_buffer(self, item):
    calls.append(item[0])
    if len(calls) == 3:
      raise KeyboardInterrupt  # What Ctrl-C (or SIGINT) raises.
    return real(self, item)

  monkeypatch.setattr(cpd.BufferProcessor, "__call__",
                      killed_on_the_third_buffer)
  args = _common(text_files, ",".join(outs), "--documents_per_buffer=5",
                 "--num_workers=1")
  with pytest.raises(KeyboardInterrupt):
    _main(*args)
  assert calls == [0, 1, 2]
  assert os.listdir(out_dir) == []  # No output, no temporary.
  monkeypatch.undo()
  # A killed process's temporaries (its pid is dead) go with the next run.
  dead = subprocess.Popen(["true"])
  dead.wait()
  stale = out_dir / f".a.tfrecord.tmp-{dead.pid}-abc"
  stale.write_bytes(b"partial")
  assert _main(*args) == 0
  assert sorted(os.listdir(out_dir)) == ["a.tfrecord", "b.tfrecord"]


def test_fresh_process_with_two_workers_equals_one_worker(text_files,
                                                          tmp_path):
  """`python -m` end to end with 2 workers (it and a started process take
  2 of the 4 buffers each); the files equal the in-process 1-worker run's,
  byte for byte."""
  flags = [f"--input_file={text_files['big']}",
           f"--vocab_file={text_files['vocab']}", "--max_seq_length=24",
           "--dupe_factor=2", "--documents_per_buffer=30",
           "--do_whole_word_mask", "--random_seed=7"]
  one = [str(tmp_path / "one" / f"{i}.tfrecord") for i in range(3)]
  two = [str(tmp_path / "two" / f"{i}.tfrecord") for i in range(3)]
  process = subprocess.Popen(
      [sys.executable, "-m", "training.create_pretraining_data", *flags,
       f"--output_file={','.join(two)}", "--num_workers=2"],
      cwd=tmp_path, env=workspace.environment(), stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True)
  try:
    assert _main(*flags, f"--output_file={','.join(one)}",
                 "--num_workers=1") == 0
    out, err = process.communicate(timeout=240)
  finally:
    process.kill()
  assert process.returncode == 0, err[-3000:]
  assert "Wrote " in out and "documents: 120" in out
  for a, b in zip(one, two):
    with open(a, "rb") as f, open(b, "rb") as g:
      content = f.read()
      assert content and content == g.read()
  assert not glob.glob(str(tmp_path / "two" / ".*"))
