"""Tests for the bundled demonstration MobileBERT (`checkpoints/demo/`)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf

from checkpoints import name_map
from checkpoints import restore
from checkpoints import tf1_io
from checkpoints.demo import corpus
from checkpoints.demo import train_demo_model as demo
from mobilebert_tf import MobileBertConfig
from mobilebert_tf import build_pretrainer
from mobilebert_tf import optimization
from mobilebert_tf import preprocessing
from mobilebert_tf import vocab as vocab_lib
from training import evaluation
from training import pretraining_data

DEMO_DIR = demo.DEFAULT_OUTPUT_DIR
CONFIG_FILE = os.path.join(DEMO_DIR, "bert_config.json")
VOCAB_FILE = os.path.join(DEMO_DIR, "vocab.txt")
CHECKPOINT = os.path.join(DEMO_DIR, demo.CHECKPOINT_PREFIX)
MAX_BUNDLE_BYTES = 20 * 2**20

# Measured on the bundled model for the first 200 held-out lines (516 masked
# pieces): top-1 0.322, top-5 0.554. Always answering the 5 most frequent
# training pieces scores 0.041 / 0.165; untrained models ~0.001 / 0.005.
MIN_TOP1 = 0.25
MIN_TOP5 = 0.45


@pytest.fixture(scope="module")
def config():
  return MobileBertConfig.from_json_file(CONFIG_FILE)


@pytest.fixture(scope="module")
def vocab():
  return preprocessing.read_vocab(VOCAB_FILE)


def _load(config, prefix):
  pretrainer = build_pretrainer(config, with_nsp=True)
  assert restore.load_checkpoint(pretrainer, config, prefix,
                                 log=lambda line: None) == "tf1"
  return pretrainer


@pytest.fixture(scope="module")
def demo_pretrainer(config):
  return _load(config, CHECKPOINT)


@pytest.fixture(scope="module")
def held_out_lines():
  lines = corpus.stdlib_docstring_lines()
  _, held_out = demo.split_corpus(lines)
  return held_out


# === Bundled files ===


def test_bundle_files_exist_and_are_small():
  sizes = {name: os.path.getsize(os.path.join(DEMO_DIR, name))
           for name in demo.OUTPUT_FILES}
  assert all(size > 0 for size in sizes.values()), sizes
  assert sum(sizes.values()) < MAX_BUNDLE_BYTES, sizes


def test_config_is_the_demo_architecture(config, vocab):
  expected = dict(demo.DEMO_CONFIG, vocab_size=len(vocab))
  assert config.to_dict() == MobileBertConfig.from_dict(expected).to_dict()


def test_vocab_has_special_tokens_and_the_config_size(config, vocab):
  assert len(vocab) == config.vocab_size
  assert vocab[:5] == list(vocab_lib.SPECIAL_TOKENS)
  assert len(set(vocab)) == len(vocab)
  # Uncased: no upper-case letters outside the special tokens.
  assert not [t for t in vocab[5:] if t != t.lower()]
  for word in ("return", "the", "file", "string", "list", "none"):
    assert word in vocab


def test_checkpoint_has_exactly_the_original_tf1_variables(config):
  shapes = tf.train.load_checkpoint(CHECKPOINT).get_variable_to_shape_map()
  table = name_map.tf1_to_keras(config, with_mlm=True, with_nsp=True)
  assert sorted(shapes) == sorted(table)
  for name, entry in table.items():
    assert tuple(shapes[name]) == entry.tf1_shape, name
  assert not [n for n in shapes if name_map.is_optimizer_variable(n)]
  values = tf1_io.read_tf1_checkpoint(CHECKPOINT)
  assert all(v.dtype == np.float32 for v in values.values())
  assert all(np.isfinite(v).all() for v in values.values())


def test_readme_reports_how_the_model_was_made(config):
  with open(os.path.join(DEMO_DIR, "README.md"), encoding="utf-8") as f:
    readme = f.read()
  for expected in ("python -m checkpoints.demo.train_demo_model",
                   "top-1 accuracy", "top-5 accuracy",
                   f"a vocabulary of {config.vocab_size}", "parameters",
                   "Python Software Foundation licence"):
    assert expected in readme


# === The model has learned something ===


def test_heldout_masked_lm_accuracy(demo_pretrainer, config, vocab,
                                    held_out_lines):
  lines = held_out_lines[:200]
  assert len(lines) == 200
  assert all(demo.is_held_out(line) for line in lines)
  ids = pretraining_data.tokenize_lines(lines, VOCAB_FILE)
  batch = pretraining_data.make_eval_examples(
      ids, pretraining_data.special_ids(vocab), seq_length=64)
  metrics = evaluation.masked_lm_metrics(demo_pretrainer, batch)
  assert metrics["count"] > 300
  assert metrics["top1"] >= MIN_TOP1, metrics
  assert metrics["top5"] >= MIN_TOP5, metrics


def test_fill_mask_predicts_plausible_words(demo_pretrainer, vocab):
  predictions = demo.predict_masks(
      demo_pretrainer, vocab, VOCAB_FILE,
      ["Return a new [MASK] containing the items of the iterable.",
       "Return True if the object is an [MASK] of the class."])
  assert {"list", "dict", "set", "tuple", "string", "object"} & set(
      predictions[0][0])
  assert "instance" in predictions[1][0]


def test_tokenizer_gives_the_preprocessor_ids(held_out_lines):
  lines = held_out_lines[:50]
  ids = pretraining_data.tokenize_lines(lines, VOCAB_FILE)
  preprocessor = preprocessing.build_preprocessor(
      VOCAB_FILE, do_lower_case=True, seq_length=128,
      tokenize_with_offsets=False)
  packed = preprocessor(tf.constant(lines))["input_word_ids"].numpy()
  for row, line_ids in zip(packed, ids):
    expected = row[1:list(row).index(3)]  # Between [CLS] and [SEP].
    np.testing.assert_array_equal(line_ids[:126], expected)


# === Corpus and examples ===


def test_corpus_is_deterministic_unique_and_normalized():
  lines = corpus.stdlib_docstring_lines(modules=("json", "heapq"))
  assert lines == corpus.stdlib_docstring_lines(modules=("json", "heapq"))
  assert len(lines) == len(set(lines)) > 20
  assert all(line and line == " ".join(line.split()) for line in lines)
  assert corpus.stdlib_docstring_lines(
      modules=("json", "heapq"), max_lines=7) == lines[:7]


def test_corpus_skips_missing_and_repeated_modules():
  lines = corpus.stdlib_docstring_lines(modules=("json",))
  assert corpus.stdlib_docstring_lines(
      modules=("json", "no_such_module_xyz", "json")) == lines


@pytest.mark.parametrize("max_lines", [0, -1, 2.5, True], ids=str)
def test_corpus_rejects_bad_max_lines(max_lines):
  with pytest.raises(ValueError, match="max_lines"):
    corpus.stdlib_docstring_lines(max_lines=max_lines)


def test_docstring_sentences_splits_prose_and_keeps_code_lines():
  doc = """Return the thing. It is big.

    >>> f(1)
    2

  Args:
    x: a value
        spanning two lines.
  """
  assert corpus.docstring_sentences(doc) == [
      "Return the thing.", "It is big.", ">>> f(1)", "x: a value",
      "spanning two lines."]


def test_held_out_split_is_about_five_percent():
  lines = [f"line number {i}" for i in range(4000)]
  train, held_out = demo.split_corpus(lines)
  assert len(train) + len(held_out) == 4000
  assert 0.035 < len(held_out) / 4000 < 0.065
  assert demo.split_corpus(lines) == (train, held_out)


# === The training script ===


def test_training_script_runs_end_to_end(tmp_path, capsys, monkeypatch):
  optimizers, shared = [], optimization.create_optimizer

  def create_optimizer(*args, **kwargs):  # The shared path, recorded.
    optimizers.append((args, kwargs))
    return shared(*args, **kwargs)

  monkeypatch.setattr(demo.optimization, "create_optimizer", create_optimizer)
  out = tmp_path / "demo"
  argv = ["train_demo_model", f"--output_dir={out}", "--steps=2",
          "--max_lines=200", "--vocab_size=200", "--num_hidden_layers=1",
          "--batch_size=8", "--eval_every=0", "--warmup_fraction=0.5"]
  assert demo.main(argv) == 0
  assert sorted(os.listdir(tmp_path)) == ["demo"]  # No temporaries.
  assert sorted(os.listdir(out)) == sorted(demo.OUTPUT_FILES)
  assert optimizers == [(("adamw",), dict(
      learning_rate=2e-3, num_train_steps=2, num_warmup_steps=1,
      weight_decay_rate=0.01))]
  config = MobileBertConfig.from_json_file(str(out / "bert_config.json"))
  assert config.num_hidden_layers == 1
  assert len(preprocessing.read_vocab(str(out / "vocab.txt"))) == (
      config.vocab_size)
  pretrainer = _load(config, str(out / "model.ckpt"))
  assert pretrainer.next_sentence is not None
  readme = (out / "README.md").read_text(encoding="utf-8")
  assert "--max_lines=200" in readme and "--steps=2" in readme
  assert "`mobilebert_tf.optimization.create_optimizer`" in readme
  sizes = {name: os.path.getsize(out / name) for name in demo.OUTPUT_FILES}
  for name, size in sizes.items():
    if name != "README.md":
      assert f"| `{name}` |" in readme and f"| {size:,} |" in readme, name
  for sentence in demo.EXAMPLE_SENTENCES:
    assert f"- {sentence} → `" in readme
  capsys.readouterr()

  # A second run refuses to overwrite.
  assert demo.main(argv) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "--overwrite" in err


@pytest.mark.parametrize("flag, message", [
    ("--steps=0", "--steps"),
    ("--seq_length=4096", "--seq_length"),
    ("--max_lines=3", "--max_lines"),
    ("--no_such_flag=1", "no_such_flag"),
    ("--steps=many", "steps"),
], ids=["zero_steps", "long_seq", "few_lines", "unknown_flag", "not_int"])
def test_training_script_usage_errors(tmp_path, capsys, flag, message):
  argv = ["train_demo_model", f"--output_dir={tmp_path / 'out'}", flag]
  assert demo.main(argv) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and message in err
  assert not (tmp_path / "out").exists()


def test_training_script_rejects_missing_parent(tmp_path, capsys):
  argv = ["train_demo_model", f"--output_dir={tmp_path / 'a' / 'b'}"]
  assert demo.main(argv) == 2
  assert "does not exist" in capsys.readouterr().err
