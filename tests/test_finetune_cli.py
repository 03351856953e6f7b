"""`python -m training.run_classifier`: end to end on the bundled TSV.

The encoder is a tiny MobileBERT with random weights (no pretrained model is
bundled); the bundled sentences (tests/data/sst_tiny) are labelled by
sentiment words, which it learns from scratch in a few epochs.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from export import encoder_savedmodel
from export import preprocessor_savedmodel
from mobilebert_tf import preprocessing
from mobilebert_tf.fill_mask import fill_mask
from tests import helpers
from training import run_classifier as rc
from training import tsv

DATA = os.path.join(os.path.dirname(__file__), "data", "sst_tiny")
TRAIN, DEV = os.path.join(DATA, "train.tsv"), os.path.join(DATA, "dev.tsv")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAINING_FLAGS = ["--epochs=10", "--batch_size=16", "--learning_rate=3e-3",
                  "--seq_length=32", "--classifier_dropout=0"]
# Sentences the model has not seen, including the awkward ones.
NEW_SENTENCES = ["a wonderful , touching film .", "dull and tedious .",
                 "", "zebra xylophone quantum", "great " * 40]


def _dev_sentences_and_labels():
  data = tsv.read_tsv(DEV)
  return data.texts[0], np.array([int(label) for label in data.labels])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  """DIR with vocab.txt, bert_config.json, a TF2 checkpoint, and the TF-Hub
  style DIR/encoder and DIR/preprocessor of a random tiny MobileBERT."""
  directory = tmp_path_factory.mktemp("model")
  sentences = tsv.read_tsv(TRAIN).texts[0] + tsv.read_tsv(DEV).texts[0]
  model = helpers.write_tiny_text_model(directory, sentences)
  pretrainer, vocab_file = model["pretrainer"], model["vocab_file"]
  encoder_savedmodel.export_encoder(pretrainer, vocab_file, True,
                                    str(directory / "encoder"))
  preprocessor_savedmodel.export_preprocessor(
      vocab_file, True, str(directory / "preprocessor"), seq_length=32)
  return dict(model, dir=directory)


def _hub_flags(model_dir):
  return [f"--encoder={model_dir['dir'] / 'encoder'}",
          f"--preprocessor={model_dir['dir'] / 'preprocessor'}"]


def _check_serving_model(export_path, sentences):
  """The exported SavedModel: raw strings in, probabilities and label out."""
  with open(os.path.join(export_path, rc.LABELS_FILE)) as f:
    assert f.read() == "0\n1\n"
  serve = tf.saved_model.load(export_path).signatures["serving_default"]
  result = serve(sentence=tf.constant(sentences))
  probabilities = result["probabilities"].numpy()
  assert probabilities.shape == (len(sentences), 2)
  assert probabilities.dtype == np.float32
  assert ((probabilities > 0) & (probabilities < 1)).all()
  np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)
  np.testing.assert_array_equal(result["label"].numpy().astype(str),
                                probabilities.argmax(-1).astype(str))
  return probabilities


@pytest.mark.slow
def test_cli_learns_from_a_hub_export(model_dir, tmp_path, capsys):
  export_path = str(tmp_path / "classifier")
  code = rc.main(["run_classifier", f"--train_file={TRAIN}",
                  f"--eval_file={DEV}", f"--export_path={export_path}"] +
                 _hub_flags(model_dir) + TRAINING_FLAGS)
  out = capsys.readouterr().out
  assert code == 0, out
  assert "Epoch 10/10" in out and "val_accuracy" in out  # Eval every epoch.
  assert "max |difference| 0" in out
  sentences, labels = _dev_sentences_and_labels()
  probabilities = _check_serving_model(export_path, sentences)
  accuracy = np.mean(probabilities.argmax(-1) == labels)
  print(f"hub export: dev accuracy {accuracy:.3f}")
  assert accuracy >= 0.85, accuracy  # Chance: 0.5.


def test_finetune_from_a_tf2_checkpoint_matches_its_serving_model(
    model_dir, tmp_path):
  values = rc.parse_flags([
      "run_classifier", f"--train_file={DEV}", f"--eval_file={DEV}",
      f"--bert_config_file={model_dir['config_file']}",
      f"--init_checkpoint={model_dir['checkpoint']}",
      f"--vocab_file={model_dir['vocab_file']}", "--do_lower_case",
      f"--export_path={tmp_path / 'classifier'}", "--epochs=1",
      "--batch_size=32", "--seq_length=32"])
  result = rc.finetune(values, log=lambda line: None)
  assert result.label_names == ["0", "1"]
  assert result.max_abs_diff <= rc.VERIFY_ATOL
  assert len(result.history["loss"]) == 1
  sentences, _ = _dev_sentences_and_labels()
  sentences = sentences + NEW_SENTENCES
  exported = _check_serving_model(result.export_path, sentences)
  in_memory = result.model([tf.constant(sentences)]).numpy()
  np.testing.assert_allclose(exported, in_memory, atol=1e-6)
  np.testing.assert_array_equal(exported.argmax(-1), in_memory.argmax(-1))
  # The encoder started from the checkpoint and was trained: 3 Adam steps
  # move each weight by at most about 3 learning rates.
  trained = result.model.get_layer("classifier").encoder_network
  source = model_dir["pretrainer"].encoder_network
  assert len(trained.trainable_variables) == len(source.trainable_variables)
  changes = [np.abs(a.numpy() - b.numpy()).max() for a, b in
             zip(trained.trainable_variables, source.trainable_variables)]
  assert max(changes) <= 10 * 3 * values.learning_rate, max(changes)
  assert max(changes) > 0


def test_refuses_to_overwrite_before_training(model_dir, tmp_path, capsys):
  export_path = tmp_path / "classifier"
  export_path.mkdir()
  (export_path / "keep").write_text("x")
  code = rc.main(["run_classifier", f"--train_file={TRAIN}",
                  f"--eval_file={DEV}", f"--export_path={export_path}"] +
                 _hub_flags(model_dir))
  err = capsys.readouterr().err
  assert code == 2 and "--overwrite" in err
  assert len(err.strip().splitlines()) == 1
  assert os.listdir(export_path) == ["keep"]


def test_accepts_a_preset_name_for_bert_config_file(tmp_path):
  values = rc.parse_flags([
      "run_classifier", f"--train_file={TRAIN}", f"--eval_file={DEV}",
      "--bert_config_file=uncased_L-24_H-128_B-512_A-4_F-4_OPT",
      f"--init_checkpoint={tmp_path / 'ckpt'}",
      f"--vocab_file={TRAIN}", f"--export_path={tmp_path / 'out'}"])
  assert values.bert_config_file == "uncased_L-24_H-128_B-512_A-4_F-4_OPT"


def test_fill_mask_on_the_exported_encoder_equals_in_memory(model_dir):
  import tensorflow_hub as hub
  texts = ["the film is [MASK] .", "a [MASK] [MASK] about the war ."]
  preprocessor = preprocessing.build_preprocessor(model_dir["vocab_file"],
                                                  True, seq_length=32)
  expected = fill_mask(texts, preprocessor, model_dir["pretrainer"], top_k=3)
  got = fill_mask(texts, hub.load(str(model_dir["dir"] / "preprocessor")),
                  hub.load(str(model_dir["dir"] / "encoder")), top_k=3)
  assert [[[p["token"] for p in m] for m in r] for r in got] == [
      [[p["token"] for p in m] for m in r] for r in expected]
  np.testing.assert_allclose(
      [[[p["probability"] for p in m] for m in r][0] for r in got],
      [[[p["probability"] for p in m] for m in r][0] for r in expected],
      rtol=1e-5)


def _write(path, text):
  with open(path, "w", encoding="utf-8") as f:
    f.write(text)
  return str(path)


@pytest.mark.parametrize("train, dev, message", [
    pytest.param("sentence\tscore\nfine .\t1\n", None,
                 r"train\.tsv line 1: missing column 'label'",
                 id="missing_column"),
    pytest.param("sentence1\tlabel\na\t1\nb\t0\n", None,
                 r"train\.tsv line 1: missing column 'sentence2'",
                 id="missing_pair_column"),
    pytest.param(None, "sentence\tlabel\ngood .\t1\nmeh .\t2\n",
                 r"dev\.tsv line 3: unknown label '2'",
                 id="unknown_eval_label"),
    pytest.param("", None, r"train\.tsv: the file is empty", id="empty_file"),
    pytest.param(None, "sentence\tlabel\n",
                 r"dev\.tsv: no examples after the header", id="header_only"),
    pytest.param("sentence\tlabel\ngood .\t1\nno label here\n", None,
                 r"train\.tsv line 3: expected 2 tab-separated fields",
                 id="short_line"),
    pytest.param("sentence\tlabel\ngood .\t1\nfine .\t1\n", None,
                 r"train\.tsv: all examples have the label '1'",
                 id="one_label"),
    pytest.param(b"sentence\tlabel\n\xff\t1\n", None,
                 r"train\.tsv line 2: not valid UTF-8", id="bad_utf8"),
])
def test_bad_input_exits_2_naming_file_and_line(tmp_path, capsys, train, dev,
                                                 message):
  if isinstance(train, bytes):
    (tmp_path / "train.tsv").write_bytes(train)
    train_file = str(tmp_path / "train.tsv")
  elif train is not None:
    train_file = _write(tmp_path / "train.tsv", train)
  else:
    train_file = TRAIN
  dev_file = _write(tmp_path / "dev.tsv", dev) if dev is not None else DEV
  encoder = tmp_path / "encoder"  # Never loaded: the data is checked first.
  encoder.mkdir()
  code = rc.main(["run_classifier", f"--train_file={train_file}",
                  f"--eval_file={dev_file}", f"--encoder={encoder}",
                  f"--preprocessor={encoder}",
                  f"--export_path={tmp_path / 'out'}"])
  err = capsys.readouterr().err
  assert code == 2
  assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
  assert re.search(message, err), err
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags, message", [
    ([], "--train_file is required"),
    ([f"--train_file={TRAIN}", f"--eval_file={DEV}", "--export_path=x"],
     "pass --encoder and --preprocessor"),
    ([f"--train_file={TRAIN}", f"--eval_file={DEV}", "--export_path=x",
      "--encoder=x"], "--preprocessor is required"),
    ([f"--train_file={TRAIN}", f"--eval_file={DEV}", "--export_path=x",
      "--encoder=x", "--preprocessor=x", "--vocab_file=v"], "not both"),
    ([f"--train_file={TRAIN}", f"--eval_file={DEV}", "--export_path=x",
      "--encoder=/nonexistent", "--preprocessor=/nonexistent"],
     "does not exist"),
    ([f"--train_file={TRAIN}", f"--eval_file={DEV}", "--export_path=x",
      "--bert_config_file=no_such_config.json", "--init_checkpoint=c",
      f"--vocab_file={TRAIN}"],
     "--bert_config_file: no_such_config.json does not exist (and is not a "
     "preset: "),
    ([f"--train_file={TRAIN}", f"--eval_file={DEV}", "--encoder=x",
      "--preprocessor=x"],
     "--export_path is required (or --tflite_file alone, for a TFLite "
     "classifier without a SavedModel)"),
    (["--epochs=0"], "epochs"),
    (["--no_such_flag=1"], "no_such_flag"),
], ids=["no_flags", "no_source", "half_source", "mixed_sources",
        "missing_dir", "missing_config", "no_output", "bad_epochs",
        "unknown_flag"])
def test_bad_flags_exit_2(capsys, flags, message):
  assert rc.main(["run_classifier"] + flags) == 2
  err = capsys.readouterr().err
  assert message in err and len(err.strip().splitlines()) == 1


def test_help_as_a_subprocess():
  result = subprocess.run(
      [sys.executable, "-m", "training.run_classifier", "--help"],
      cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 0, result.stderr
  assert "--train_file" in result.stdout and "--encoder" in result.stdout


def test_seq_length_longer_than_the_encoders_positions_exits_2(model_dir,
                                                               tmp_path,
                                                               capsys):
  """Named before training (it used to fail inside the first step)."""
  export_path = tmp_path / "classifier"
  assert rc.main(["run_classifier", f"--train_file={DEV}",
                  f"--eval_file={DEV}", f"--export_path={export_path}",
                  "--seq_length=100"] + _hub_flags(model_dir)) == 2
  err = capsys.readouterr().err
  assert "--seq_length (100) exceeds the max_position_embeddings (64)" in err
  assert len(err.strip().splitlines()) == 1
  assert not export_path.exists()
