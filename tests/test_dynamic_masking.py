"""Tests for `training.dynamic_masking`: examples from raw text, masked on
the fly, with the features of tf-models-official's BERT pretraining data."""

import math
import random

import numpy as np
import pytest

from training import dynamic_masking as dm
from training import records

CLS, SEP, MASK = 2, 3, 4
SEQ_LENGTH, MAX_PREDICTIONS = 128, 20
NUM_DOCUMENTS = 150
FILLER = [f"f{i}" for i in range(300)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  """A corpus whose lines tell where they are: line t of document d is
  `d<d> l<t> <fillers>`, each of those words one piece."""
  root = tmp_path_factory.mktemp("dynamic")
  rng = random.Random(0)
  lines, t = [], 0
  for d in range(NUM_DOCUMENTS):
    for _ in range(rng.randint(1, 8)):
      # Long lines: pairs have ~100 pieces, so rounding the masked count
      # up (RandomItemSelector) adds under 1% to the rate.
      fillers = rng.choices(FILLER, k=rng.randint(40, 70))
      lines.append(" ".join([f"d{d}", f"l{t}"] + fillers))
      t += 1
    lines.append("")
  vocab = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] +
           [f"d{d}" for d in range(NUM_DOCUMENTS)] +
           [f"l{i}" for i in range(t)] + FILLER)
  (root / "vocab.txt").write_text("".join(w + "\n" for w in vocab))
  # Two files; the first ends without a blank line (its end ends the
  # document), the second with one.
  half = lines.index("", len(lines) // 2)
  (root / "corpus").mkdir()
  (root / "corpus" / "a.txt").write_text("\n".join(lines[:half]))
  (root / "corpus" / "b.txt").write_text("\n".join(lines[half + 1:]) + "\n")
  index = {w: i for i, w in enumerate(vocab)}
  line_of_id = {index[f"l{i}"]: i for i in range(t)}
  document_of_line = {int(line.split()[1][1:]): int(line.split()[0][1:])
                      for line in lines if line}
  return dict(root=root, vocab=str(root / "vocab.txt"),
              pattern=str(root / "corpus" / "*.txt"), lines=lines,
              line_of_id=line_of_id, document_of_line=document_of_line,
              vocab_size=len(vocab))


def _dataset(files, **kwargs):
  kwargs = dict(dict(seed=5, num_epochs=1), **kwargs)
  return dm.dynamic_masking_dataset(files["pattern"], files["vocab"],
                                    SEQ_LENGTH, MAX_PREDICTIONS, **kwargs)


def _numpy(dataset):
  examples = list(dataset.as_numpy_iterator())
  return {name: np.stack([e[name] for e in examples])
          for name in dm.FEATURE_NAMES}


@pytest.fixture(scope="module")
def two_epochs(files):
  return _numpy(_dataset(files, num_epochs=2))


def _original(batch, row):
  length = int(batch["input_mask"][row].sum())
  tokens = batch["input_word_ids"][row, :length].copy()
  n = int(batch["masked_lm_weights"][row].sum())
  positions = batch["masked_lm_positions"][row, :n]
  tokens[positions] = batch["masked_lm_ids"][row, :n]
  return tokens, positions


def test_features_are_those_of_model_gardens_record_loader(files, tmp_path,
                                                           two_epochs):
  from official.nlp.data import pretrain_dataloader  # pylint: disable=g-import-not-at-top
  path = str(tmp_path / "one.tfrecord")
  row = {name: values[0] for name, values in two_epochs.items()}
  with records.record_writer(path) as write:
    write(row)
  config = pretrain_dataloader.BertPretrainDataConfig(
      input_path=path, seq_length=SEQ_LENGTH,
      max_predictions_per_seq=MAX_PREDICTIONS, global_batch_size=1,
      is_training=False)
  loaded = pretrain_dataloader.BertPretrainDataLoader(config).load().unbatch()
  assert _dataset(files).element_spec == loaded.element_spec
  again = next(iter(loaded))
  for name in dm.FEATURE_NAMES:
    np.testing.assert_array_equal(again[name].numpy(), row[name])


def test_pairs_are_next_lines_or_lines_of_other_documents(files, two_epochs):
  batch = two_epochs
  n = len(batch["input_mask"]) // 2
  labels = batch["next_sentence_labels"][:, 0]
  first_epoch_lines = []
  for row in range(len(labels)):
    tokens, _ = _original(batch, row)
    seps = np.flatnonzero(tokens == SEP)
    assert tokens[0] == CLS and len(seps) == 2 and seps[1] == len(tokens) - 1
    types = batch["input_type_ids"][row, :len(tokens)]
    assert (types[:seps[0] + 1] == 0).all() and (types[seps[0] + 1:] == 1).all()
    assert not batch["input_word_ids"][row, len(tokens):].any()
    a_line = files["line_of_id"][tokens[2]]
    b_line = files["line_of_id"][tokens[seps[0] + 2]]
    a_doc = files["document_of_line"][a_line]
    b_doc = files["document_of_line"][b_line]
    if labels[row]:
      assert a_doc != b_doc  # Blocks hold ~40 documents.
    else:
      assert (a_doc, b_line) == (b_doc, a_line + 1)
    if row < n:
      first_epoch_lines.append(a_line)
  # Each line with a successor in its document and block is an A once per
  # epoch. The stream of lines: the files' lines, a blank after each.
  stream = files["lines"] + [""]
  block = dm.BLOCK_LINES
  with_next = [int(l.split()[1][1:]) for i, l in enumerate(stream[:-1])
               if l and stream[i + 1] and i // block == (i + 1) // block]
  assert len(with_next) < len([l for l in stream if l]) - NUM_DOCUMENTS
  assert sorted(first_epoch_lines) == sorted(with_next)
  sigma = 0.5 / math.sqrt(len(labels))
  assert abs(labels.mean() - 0.5) < 4 * sigma, labels.mean()
  # Pairs longer than seq_length are trimmed to it.
  lengths = batch["input_mask"].sum(-1)
  assert lengths.max() == SEQ_LENGTH and (lengths == SEQ_LENGTH).mean() > 0.1


def test_masking_counts_and_80_10_10(files, two_epochs):
  batch = two_epochs
  shown, original, predicted, candidates = [], [], 0, 0
  for row in range(len(batch["input_mask"])):
    tokens, positions = _original(batch, row)
    selectable = int(np.sum(~np.isin(tokens, [CLS, SEP])))
    # RandomItemSelector: the rate of the selectable pieces, rounded up.
    # (In float32, as it computes: 100 * 0.15 rounds up to 16.)
    expected = np.ceil(np.float32(selectable) * np.float32(0.15))
    assert len(positions) == min(MAX_PREDICTIONS, int(expected))
    assert (np.diff(positions) > 0).all()
    assert not np.isin(tokens[positions], [CLS, SEP]).any()
    weights = batch["masked_lm_weights"][row]
    assert weights.tolist() == [1.0] * len(positions) + [0.0] * (
        MAX_PREDICTIONS - len(positions))
    shown.append(batch["input_word_ids"][row, positions])
    original.append(tokens[positions])
    predicted += len(positions)
    candidates += selectable
  assert abs(predicted / candidates - 0.15) < 0.01
  shown, original = np.concatenate(shown), np.concatenate(original)
  assert len(shown) > 5000
  is_mask = shown == MASK
  kept = shown == original
  replaced = ~is_mask & ~kept
  assert abs(is_mask.mean() - 0.8) < 0.03
  assert abs(kept.mean() - 0.1) < 0.03
  assert abs(replaced.mean() - 0.1) < 0.03
  assert shown[replaced].max() < files["vocab_size"]


def test_deterministic_for_a_seed_with_fresh_masks_each_epoch(files,
                                                              two_epochs):
  n = len(two_epochs["input_mask"]) // 2
  epoch = {name: (v[:n], v[n:]) for name, v in two_epochs.items()}
  # Epoch 1 is rebuilt alone (a resumed run) exactly.
  resumed = _numpy(_dataset(files, start_epoch=1))
  for name in dm.FEATURE_NAMES:
    np.testing.assert_array_equal(resumed[name], epoch[name][1])
  # Fresh draws each epoch: other pairs, other masks.
  assert (epoch["next_sentence_labels"][0] !=
          epoch["next_sentence_labels"][1]).mean() > 0.3
  assert (epoch["masked_lm_positions"][0] !=
          epoch["masked_lm_positions"][1]).any(-1).mean() > 0.9
  # Another seed, another stream; by default, forever.
  other = _numpy(_dataset(files, seed=6, num_epochs=None).take(n + 10))
  assert len(other["input_mask"]) == n + 10
  assert (other["masked_lm_positions"][:n] !=
          epoch["masked_lm_positions"][0]).any(-1).mean() > 0.9


def test_bad_arguments(files, tmp_path):
  with pytest.raises(FileNotFoundError, match="file_patterns: no file matches"):
    dm.dynamic_masking_dataset(str(tmp_path / "none*.txt"), files["vocab"],
                               128, 20)
  with pytest.raises(ValueError, match="seq_length"):
    dm.dynamic_masking_dataset(files["pattern"], files["vocab"], 4, 20)
  with pytest.raises(ValueError, match="masked_lm_prob"):
    dm.dynamic_masking_dataset(files["pattern"], files["vocab"], 128, 20,
                               masked_lm_prob=1.5)
  bad_vocab = tmp_path / "vocab.txt"
  bad_vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nx\n")
  with pytest.raises(ValueError, match=r"missing \[MASK\]"):
    dm.dynamic_masking_dataset(files["pattern"], str(bad_vocab), 128, 20)
