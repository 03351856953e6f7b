"""Tests for the bundled demonstration MobileBERT (`checkpoints/demo/`).

The bundle is made by the library's own CLIs, with the commands of
`checkpoints/demo/README.md`: `test_readme_commands_make_a_bundle` runs that
block as written, each command in a fresh process, with a few hundred corpus
lines and a few steps instead of the full run's.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json
import re
import shlex

import numpy as np
import pytest
import tensorflow as tf

from checkpoints import name_map
from checkpoints import restore
from checkpoints import tf1_io
from checkpoints.demo import corpus
from checkpoints.demo import data as demo_data
from checkpoints.demo import evaluate
from mobilebert_tf import MobileBertConfig
from mobilebert_tf import build_pretrainer
from mobilebert_tf import preprocessing
from mobilebert_tf import vocab as vocab_lib
from tests import workspace
from training import distiller
from training import pretraining_data

DEMO_DIR = evaluate.DEMO_DIR
CONFIG_FILE = evaluate.CONFIG_FILE
TEACHER_CONFIG_FILE = os.path.join(DEMO_DIR, "teacher_config.json")
VOCAB_FILE = evaluate.VOCAB_FILE
CHECKPOINT = os.path.join(DEMO_DIR, "model.ckpt")
BUNDLE_FILES = ("bert_config.json", "teacher_config.json", "vocab.txt",
                "model.ckpt.index", "model.ckpt.data-00000-of-00001",
                "README.md")
MAX_BUNDLE_BYTES = 20 * 2**20

# "Has learnt the corpus", far from chance: always answering the 5 most
# frequent training pieces scores 0.041 / 0.165 on these lines, an untrained
# model ~0.001 / 0.005.
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
  _, held_out = demo_data.split_corpus(corpus.stdlib_docstring_lines())
  return held_out


def _readme():
  with open(os.path.join(DEMO_DIR, "README.md"), encoding="utf-8") as f:
    return f.read()


# === Bundled files ===


def test_bundle_files_exist_and_are_small():
  sizes = {name: os.path.getsize(os.path.join(DEMO_DIR, name))
           for name in BUNDLE_FILES}
  assert all(size > 0 for size in sizes.values()), sizes
  assert sum(sizes.values()) < MAX_BUNDLE_BYTES, sizes


def test_configs_are_a_mobilebert_student_and_its_ib_bert_teacher(config,
                                                                   vocab):
  teacher = MobileBertConfig.from_json_file(TEACHER_CONFIG_FILE)
  assert config.vocab_size == teacher.vocab_size == len(vocab)
  # The student: a true bottleneck, NoNorm, stacked FFNs (MobileBERT_OPT);
  # the teacher: an inverted bottleneck with layer norm (IB-BERT).
  assert config.intra_bottleneck_size < config.hidden_size
  assert config.normalization_type == "no_norm"
  assert config.num_feedforward_networks > 1
  assert teacher.intra_bottleneck_size > teacher.hidden_size
  assert teacher.normalization_type == "layer_norm"
  distiller.check_compatible(teacher, config)  # Raises if it cannot learn.


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


# === The model has learned something ===


def test_heldout_masked_lm_accuracy(demo_pretrainer, held_out_lines):
  lines = held_out_lines[:200]
  assert len(lines) == 200
  assert all(demo_data.is_held_out(line) for line in lines)
  metrics = evaluate.held_out_metrics(demo_pretrainer, lines, VOCAB_FILE)
  assert metrics["count"] > 300
  assert metrics["top1"] >= MIN_TOP1, metrics
  assert metrics["top5"] >= MIN_TOP5, metrics


def test_fill_mask_predicts_plausible_words(demo_pretrainer):
  predictions = evaluate.example_predictions(
      demo_pretrainer, VOCAB_FILE,
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


# === Corpus and its split ===


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
  train, held_out = demo_data.split_corpus(lines)
  assert len(train) + len(held_out) == 4000
  assert 0.035 < len(held_out) / 4000 < 0.065
  assert all(demo_data.is_held_out(line) for line in held_out)
  assert not any(demo_data.is_held_out(line) for line in train)
  assert demo_data.split_corpus(list(reversed(lines))) == (
      train[::-1], held_out[::-1])  # A property of the line, not its place.


def test_documents_are_separated_by_blank_lines():
  size = demo_data.DOCUMENT_LINES
  lines = [f"Line {i}." for i in range(2 * size + 3)]
  documents = demo_data.documents_text(lines).strip().split("\n\n")
  assert [d.splitlines() for d in documents] == [
      lines[:size], lines[size:2 * size], lines[2 * size:]]
  assert demo_data.documents_text(lines[:size]).endswith(".\n\n")


def test_data_cli_writes_both_splits_and_refuses_to_overwrite(tmp_path,
                                                              capsys):
  out = tmp_path / "data"
  argv = ["data", f"--output_dir={out}", "--max_lines=300"]
  assert demo_data.main(argv) == 0
  assert sorted(os.listdir(out)) == ["held_out.txt", "train.txt"]
  train, held_out = (demo_data.read_lines(str(out / f"{split}.txt"))
                     for split in demo_data.SPLITS)
  assert (train, held_out) == demo_data.split_corpus(
      corpus.stdlib_docstring_lines(max_lines=300))
  assert f"{len(held_out)} lines" in capsys.readouterr().out
  before = (out / "train.txt").read_bytes()
  assert demo_data.main(argv) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "--overwrite" in err
  assert (out / "train.txt").read_bytes() == before
  assert demo_data.main(argv + ["--overwrite"]) == 0


@pytest.mark.parametrize("argv, message", [
    ([], "--output_dir is required"),
    (["--output_dir=OUT", "--max_lines=5"], "max_lines"),
    (["--output_dir=OUT", "--no_such_flag"], "no_such_flag"),
], ids=["no_output_dir", "few_lines", "unknown_flag"])
def test_data_cli_usage_errors(tmp_path, capsys, argv, message):
  argv = [a.replace("OUT", str(tmp_path / "out")) for a in argv]
  assert demo_data.main(["data", *argv]) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and message in err, err
  assert not (tmp_path / "out").exists()


def test_write_splits_refuses_an_empty_split(tmp_path):
  lines = [f"line number {i}" for i in range(100)]
  train = [line for line in lines if not demo_data.is_held_out(line)]
  with pytest.raises(ValueError, match="held_out split of 5 corpus lines"):
    demo_data.write_splits(str(tmp_path / "out"), train[:5])
  assert not (tmp_path / "out").exists()


def test_evaluate_cli_usage_errors(tmp_path, capsys):
  assert evaluate.main(["evaluate", f"--checkpoint={CHECKPOINT}",
                        f"--held_out_file={tmp_path / 'none.txt'}"]) == 2
  assert "no such file" in capsys.readouterr().err
  empty = tmp_path / "empty.txt"
  empty.write_text("\n\n", encoding="utf-8")
  assert evaluate.main(["evaluate", f"--checkpoint={tmp_path / 'nothing'}",
                        f"--held_out_file={empty}"]) == 2
  assert "has no text" in capsys.readouterr().err


# === The commands that make the bundle ===

# The full run's sizes -> a test's: the README's values must be these (so a
# changed README fails here until this table follows).
_SHRINK = {
    "--dupe_factor": ("20", "1"),
    "--train_batch_size": ("64", "8"),
    "--num_distill_steps": ("800", "4"),  # One step per block.
    "--num_warmup_steps": (("100", "110"), "1"),
    "--num_train_steps": (("2000", "2200"), "2"),
}


def _bundle_commands():
  """The README's block that makes the bundle, one command per item."""
  blocks = re.findall(r"^```sh\n(.*?)^```", _readme(), re.S | re.M)
  body = [b for b in blocks if "training.distill" in b]
  assert len(body) == 1, "checkpoints/demo/README.md: one block makes it"
  return [c for c in body[0].replace("\\\n", " ").splitlines() if c.strip()]


def _shrunk(command, work):
  words = shlex.split(command)
  out = []
  for word in words:
    name, _, value = word.partition("=")
    if name in _SHRINK:
      full, small = _SHRINK[name]
      assert value in (full if isinstance(full, tuple) else (full,)), word
      word = f"{name}={small}"
    out.append(word.replace("build/demo_training", work).replace(
        "checkpoints/demo/model.ckpt", f"{work}/model.ckpt"))
  if out[:3] == ["python", "-m", "checkpoints.demo.data"]:
    out.append("--max_lines=400")
  return " ".join(shlex.quote(w) for w in out)


def test_readme_commands_make_a_bundle(tmp_path):
  commands = _bundle_commands()
  modules = [shlex.split(c)[2] for c in commands]
  assert modules == [
      "checkpoints.demo.data", "training.create_pretraining_data",
      "training.pretrain", "training.distill", "checkpoints.to_tf1",
      "checkpoints.demo.evaluate", "checkpoints.demo.evaluate"]
  work = str(tmp_path / "work")
  outputs = [workspace.run(_shrunk(c, work), cwd=workspace.REPO).stdout
             for c in commands]
  student = MobileBertConfig.from_json_file(CONFIG_FILE)
  # The distilled student, written in the original layout, restores.
  pretrainer = _load(student, f"{work}/model.ckpt")
  assert pretrainer.next_sentence is not None
  with open(os.path.join(work, "student", "config.json"),
            encoding="utf-8") as f:
    assert MobileBertConfig.from_dict(json.load(f)) == student
  assert "held-out lines" in outputs[5] and "top-1 accuracy" in outputs[5]
  for sentence in evaluate.EXAMPLE_SENTENCES:
    assert f"{sentence} -> " in outputs[5]
