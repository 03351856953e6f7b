"""`python -m training.pretrain`: resume after SIGKILL, multi-worker, errors.

Fresh processes only where the point is one: the uninterrupted reference
run (started in the background by a module fixture and shared), the killed
and the resumed run, and the two multi-worker workers. Everything else calls
`pretrain.main([...])` in-process.
"""

import contextlib
import io
import json
import os
import re
import shutil
import socket

import numpy as np
import pytest
import tensorflow as tf

from tests import test_training_loop as data_lib
from tests import workspace

STEPS, WARMUP, LEARNING_RATE, SAVE_EVERY, PAUSE_AFTER = 8, 2, 1e-3, 3, 5
_PROCESS_TIMEOUT = 240


def _flags(directory, model_dir, **overrides):
  values = dict(
      bert_config_file=os.path.join(directory, "config.json"),
      input_file=os.path.join(directory, "train.tfrecord"),
      model_dir=model_dir, train_batch_size=8,
      max_seq_length=data_lib.SEQ,
      max_predictions_per_seq=data_lib.PREDICTIONS,
      num_train_steps=STEPS, num_warmup_steps=WARMUP,
      learning_rate=LEARNING_RATE, save_checkpoints_steps=SAVE_EVERY,
      steps_per_loop=1, shuffle_buffer_size=50, seed=1, deterministic=True)
  values.update(overrides)
  return [f"--{k}={v}" for k, v in values.items() if v is not None]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  """config.json, train/eval records and a vocabulary of the tiny model."""
  from training import records  # pylint: disable=g-import-not-at-top
  from mobilebert_tf.vocab import SPECIAL_TOKENS
  directory = tmp_path_factory.mktemp("pretrain_data")
  with open(directory / "config.json", "w") as f:
    json.dump(data_lib.CONFIG, f)
  records.write_batch(str(directory / "train.tfrecord"), data_lib.make_batch())
  records.write_batch(str(directory / "eval.tfrecord"),
                      data_lib.make_batch(seed=2, n=60, lines_seed=3))
  tokens = list(SPECIAL_TOKENS) + [
      f"w{i}" for i in range(data_lib.VOCAB - len(SPECIAL_TOKENS))]
  (directory / "vocab.txt").write_text("".join(t + "\n" for t in tokens))
  return str(directory)


def _run(args, log_path, env=None):
  return workspace.CliProcess("training.pretrain", args, log_path, env=env,
                              timeout=_PROCESS_TIMEOUT)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
  """The uninterrupted one-device run, started at once in the background.

  `reference()` waits for it and returns its model_dir.
  """
  model_dir = str(tmp_path_factory.mktemp("reference") / "model")
  run = _run(_flags(data, model_dir), model_dir + ".log")
  finished = []

  def wait():
    if not finished:
      run.wait()
      finished.append(model_dir)
    return model_dir

  yield wait
  run.kill()


def _variables(prefix):
  reader = tf.train.load_checkpoint(prefix)
  return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
          if k != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def _model_weights(prefix):
  return {k: v for k, v in _variables(prefix).items()
          if k.split("/")[0] in ("encoder", "masked_lm", "next_sentence")}


# === Fault tolerance ===


def test_killed_run_resumes_to_the_same_weights(data, reference, tmp_path):
  from mobilebert_tf import optimization  # pylint: disable=g-import-not-at-top
  model_dir = str(tmp_path / "model")
  args = _flags(data, model_dir)
  workspace.kill_after_step("training.pretrain", args, PAUSE_AFTER,
                            str(tmp_path / "killed.log"),
                            timeout=_PROCESS_TIMEOUT)
  last_saved = PAUSE_AFTER // SAVE_EVERY * SAVE_EVERY  # 3: step 4, 5 lost
  assert tf.train.latest_checkpoint(model_dir) == os.path.join(
      model_dir, f"ckpt-{last_saved}")
  # A save of the next checkpoint cut short: files, but no entry in the
  # `checkpoint` state file (written only after them). Never to be read.
  interrupted = os.path.join(model_dir, f"ckpt-{last_saved + SAVE_EVERY}")
  for suffix in (".index", ".data-00000-of-00001"):
    with open(interrupted + suffix, "wb") as f:
      f.write(b"half-written")

  output = _run(args, str(tmp_path / "resumed.log")).wait()
  match = re.search(r"Resumed from (\S+) at step (\d+) \(learning rate "
                    r"([0-9.e+-]+)\)", output)
  assert match, output
  assert match.group(1) == os.path.join(model_dir, f"ckpt-{last_saved}")
  assert int(match.group(2)) == last_saved
  schedule = optimization.create_optimizer(
      "lamb", LEARNING_RATE, num_train_steps=STEPS, num_warmup_steps=WARMUP)
  assert float(match.group(3)) == pytest.approx(
      optimization.learning_rate_at(schedule, last_saved), rel=1e-5)
  assert f"step {last_saved + 1}/{STEPS}" in output

  final = _variables(os.path.join(model_dir, f"ckpt-{STEPS}"))
  assert final["step/.ATTRIBUTES/VARIABLE_VALUE"] == STEPS
  assert final["optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE"] == STEPS
  assert final["examples_seen/.ATTRIBUTES/VARIABLE_VALUE"] == 8 * STEPS
  want = _variables(os.path.join(reference(), f"ckpt-{STEPS}"))
  assert sorted(final) == sorted(want)
  different = [k for k in want if not np.array_equal(final[k], want[k])]
  assert not different, different[:5]


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def test_two_workers_train_like_one(data, reference, tmp_path):
  model_dir = str(tmp_path / "model")
  cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
  runs = [_run(_flags(data, model_dir,
                      distribution_strategy="multi_worker_mirrored"),
               str(tmp_path / f"worker{i}.log"),
               env={"TF_CONFIG": json.dumps(
                   {"cluster": cluster, "task": {"type": "worker",
                                                 "index": i}})})
          for i in (0, 1)]
  try:
    outputs = [run.wait() for run in runs]
  finally:
    for run in runs:
      run.kill()
  assert "2 replicas" in outputs[0]
  assert "Saved checkpoint" in outputs[0]
  assert "Saved checkpoint" not in outputs[1]  # only the chief writes
  assert not [n for n in os.listdir(model_dir) if n.startswith("workertemp")]
  got = _model_weights(os.path.join(model_dir, f"ckpt-{STEPS}"))
  want = _model_weights(os.path.join(reference(), f"ckpt-{STEPS}"))
  assert sorted(got) == sorted(want)
  # Float32 rounding of another summation order; Adam-type updates turn it
  # into differences of up to ~1e-3 * learning rate per step.
  for key in want:
    np.testing.assert_allclose(got[key], want[key], rtol=1e-5,
                               atol=LEARNING_RATE * 1e-3, err_msg=key)


# === In-process runs ===


def _main(args):
  """(exit code, stdout, stderr) of `pretrain.main(args)`.

  Without --deterministic: op determinism, once on, stays on in the process
  (for every other test of the session too).
  """
  from training import pretrain  # pylint: disable=g-import-not-at-top
  args = [a for a in args if not a.startswith("--deterministic")]
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = pretrain.main(["pretrain"] + args)
  return code, out.getvalue(), err.getvalue()


def _assert_one_line_error(code, err, pattern):
  assert code == 2, err
  lines = err.strip().splitlines()
  assert len(lines) == 1 and "Traceback" not in err, err
  assert re.search(pattern, lines[0]), lines[0]


def _write_config(path, **changes):
  with open(path, "w") as f:
    json.dump(dict(data_lib.CONFIG, **changes), f)
  return str(path)


def _not_a_record(tmp_path):
  path = tmp_path / "corpus.txt"
  path.write_text("plain text, not records\n" * 10)
  return dict(input_file=str(path))


BAD_INPUTS = {
    "missing_input": (lambda d, t: dict(input_file=str(t / "nope-*.tfrecord")),
                      r"--input_file: no file matches"),
    "seq_length": (lambda d, t: dict(max_seq_length=32),
                   r"--max_seq_length=32 does not match .*input_ids has 16 "
                   r"values; pass --max_seq_length=16"),
    "predictions": (lambda d, t: dict(max_predictions_per_seq=5),
                    r"--max_predictions_per_seq=5 does not match .* pass "
                    r"--max_predictions_per_seq=4"),
    "vocab": (lambda d, t: dict(bert_config_file=_write_config(
        t / "small.json", vocab_size=20)),
              r"holds id \d+ >= vocab_size 20 .*regenerate them"),
    "not_records": (lambda d, t: _not_a_record(t),
                    r"is not a TFRecord file"),
    "no_eval_file": (lambda d, t: dict(do_eval=True),
                     r"--eval_input_file is required with --do_eval"),
    "two_sources": (lambda d, t: dict(text_file=os.path.join(d, "x.txt")),
                    r"either --input_file .* not both"),
    "no_tf_config": (lambda d, t: dict(
        distribution_strategy="multi_worker_mirrored"),
                     r"needs the TF_CONFIG environment variable"),
    "bad_tf_config": (lambda d, t: dict(
        distribution_strategy="multi_worker_mirrored"),
                      r"TF_CONFIG is not valid JSON"),
    "no_tpu": (lambda d, t: dict(distribution_strategy="tpu"),
               r"--distribution_strategy=tpu: no TPU found"),
    "batch_vs_warmup": (lambda d, t: dict(num_warmup_steps=STEPS + 1),
                        r"--num_warmup_steps \(9\) must be at most"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line(case, data, tmp_path, monkeypatch):
  make, pattern = BAD_INPUTS[case]
  monkeypatch.delenv("TF_CONFIG", raising=False)
  if case == "bad_tf_config":
    monkeypatch.setenv("TF_CONFIG", "{cluster: ")
  model_dir = tmp_path / "model"
  code, _, err = _main(_flags(data, str(model_dir), **make(data, tmp_path)))
  _assert_one_line_error(code, err, pattern)
  assert not model_dir.exists()  # nothing written


def test_model_dir_of_another_config_is_refused(data, reference, tmp_path):
  model_dir = reference()
  before = {n: os.path.getmtime(os.path.join(model_dir, n))
            for n in os.listdir(model_dir)}
  other = _write_config(tmp_path / "wider.json", intermediate_size=32)
  code, _, err = _main(_flags(data, model_dir, bert_config_file=other,
                              num_train_steps=STEPS + 2))
  _assert_one_line_error(
      code, err, r"--model_dir .* holds a model of another config .*"
      r"intermediate_size 16 vs 32")
  assert {n: os.path.getmtime(os.path.join(model_dir, n))
          for n in os.listdir(model_dir)} == before


def test_corrupt_record_file(data, tmp_path):
  with open(os.path.join(data, "train.tfrecord"), "rb") as f:
    content = bytearray(f.read())
  # Garble the middle (a later record's CRC fails; the first one is fine).
  middle = len(content) // 2
  content[middle:middle + 64] = b"\xff" * 64
  path = tmp_path / "corrupt.tfrecord"
  path.write_bytes(bytes(content))
  code, _, err = _main(_flags(data, str(tmp_path / "model"),
                              input_file=str(path), shuffle_buffer_size=200))
  _assert_one_line_error(code, err, r"TFRecord file is corrupt or truncated")


def test_pipeline_checks_every_record(data, tmp_path):
  """Ids beyond the vocabulary and mismatched lengths in later records."""
  from training import pretrain  # pylint: disable=g-import-not-at-top
  from training import records  # pylint: disable=g-import-not-at-top
  batch = data_lib.make_batch()
  features = batch.features()
  features["input_word_ids"][3, 2] = data_lib.VOCAB  # out of range
  path = str(tmp_path / "bad_id.tfrecord")
  with records.record_writer(path) as write:
    for i in range(5):
      write({k: v[i] for k, v in features.items()})
  dataset = tf.data.TFRecordDataset(path).map(pretrain.records_map_fn(
      data_lib.SEQ, data_lib.PREDICTIONS, data_lib.VOCAB, "--input_file"))
  iterator = iter(dataset)
  for _ in range(3):
    next(iterator)
  with pytest.raises(tf.errors.InvalidArgumentError) as error:
    next(iterator)
  values = pretrain._define_flags()  # pylint: disable=protected-access
  values(["pretrain"])
  message = pretrain.operation_error(error.value, values)
  assert re.fullmatch(r"--input_file: input_ids holds an id >= vocab_size 60 "
                      r".*regenerate them with the vocab.txt of the model, or "
                      r"pass the config of that vocabulary", message), message
  # A length mismatch at parse time names the flag.
  dataset = tf.data.TFRecordDataset(path).map(pretrain.records_map_fn(
      data_lib.SEQ + 1, data_lib.PREDICTIONS, data_lib.VOCAB, "x"))
  with pytest.raises(tf.errors.InvalidArgumentError) as error:
    next(iter(dataset))
  values(["pretrain", f"--max_seq_length={data_lib.SEQ + 1}"])
  message = pretrain.operation_error(error.value, values)
  assert re.fullmatch(f"--max_seq_length={data_lib.SEQ + 1} does not match "
                      r"the records: their \w+ has another length; pass "
                      "the --max_seq_length the records were made with",
                      message), message


def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(
    data, tmp_path):
  model_dir = str(tmp_path / "model")
  # LAMB steps by learning_rate * |w|: the weights overflow at once.
  code, out, err = _main(_flags(
      data, model_dir, learning_rate=1e30, num_warmup_steps=0,
      save_checkpoints_steps=1))
  _assert_one_line_error(code, err, r"the (training loss|model's weights) is "
                         r"not finite at step (\d+) .*training stopped "
                         "without saving")
  bad_step = int(re.search(r"at step (\d+)", err).group(1))
  assert 1 < bad_step <= STEPS
  good = os.path.join(model_dir, f"ckpt-{bad_step - 1}")
  assert tf.train.latest_checkpoint(model_dir) == good
  assert f"latest checkpoint is still {good}" in err
  assert not os.path.exists(os.path.join(model_dir, f"ckpt-{bad_step}.index"))
  assert all(np.isfinite(v).all() for v in _model_weights(good).values())


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_a_step_on_cpu(data, tmp_path, policy):
  import tf_keras  # pylint: disable=g-import-not-at-top
  model_dir = str(tmp_path / "model")
  code, out, err = _main(_flags(data, model_dir, num_train_steps=1,
                                num_warmup_steps=0,
                                mixed_precision=policy,
                                deterministic=None))
  assert code == 0, err
  assert f"policy {policy}" in out
  # float16 needs loss scaling (a LossScaleOptimizer, its scale saved).
  has_loss_scale = any("loss_scale" in name for name in _variables(
      tf.train.latest_checkpoint(model_dir)))
  assert has_loss_scale == (policy == "mixed_float16")
  loss = float(re.search(r"step 1/1 - loss: ([0-9.]+)", out).group(1))
  assert 0 < loss < 10
  assert tf.train.latest_checkpoint(model_dir).endswith("ckpt-1")
  # Float32 variables (the policy computes in bfloat16 only), policy reset.
  weights = _model_weights(os.path.join(model_dir, "ckpt-1"))
  assert {v.dtype for v in weights.values()} == {np.dtype(np.float32)}
  assert tf_keras.mixed_precision.global_policy().name == "float32"


def test_eval_restore_and_export(data, reference, tmp_path):
  """Eval mode; the trainer's checkpoint in build_pretrainer,
  tf-models-official's pretrainer, a SavedModel export and a TF1 checkpoint.
  """
  import tf_keras  # pylint: disable=g-import-not-at-top
  from official.projects.mobilebert import model_utils as tfm_model_utils
  from checkpoints import restore  # pylint: disable=g-import-not-at-top
  from checkpoints import tf1_io  # pylint: disable=g-import-not-at-top
  from export import to_savedmodel  # pylint: disable=g-import-not-at-top
  from mobilebert_tf import MobileBertConfig, build_pretrainer
  from training import pretraining_losses  # pylint: disable=g-import-not-at-top
  from training import records  # pylint: disable=g-import-not-at-top
  model_dir = str(tmp_path / "model")
  shutil.copytree(reference(), model_dir)
  eval_file = os.path.join(data, "eval.tfrecord")
  # Evaluation reads the model only: any --optimizer (LAMB trained it).
  code, out, err = _main(_flags(data, model_dir, do_train=False, do_eval=True,
                                eval_input_file=eval_file, eval_batch_size=8,
                                max_eval_steps=3, optimizer="adamw"))
  assert code == 0, err
  # --deterministic held for the run only, not for this (calling) process.
  from tensorflow.python.framework import config  # pylint: disable=g-direct-tensorflow-import,g-import-not-at-top
  assert not config.is_op_determinism_enabled()
  with open(os.path.join(model_dir, "eval_results.json")) as f:
    results = json.load(f)
  assert results["step"] == STEPS and results["eval_steps"] == 3
  assert 0 <= results["masked_lm_accuracy"] <= 1
  # Top-5 counts every top-1 hit and more (a 60-piece vocabulary).
  assert results["masked_lm_accuracy"] < results["masked_lm_top5_accuracy"]
  assert results["masked_lm_top5_accuracy"] <= 1
  assert 0 <= results["next_sentence_accuracy"] <= 1

  # The trainer's checkpoint in a fresh pretrainer: the same eval losses.
  config = MobileBertConfig.from_dict(data_lib.CONFIG)
  prefix = os.path.join(model_dir, f"ckpt-{STEPS}")
  ours = build_pretrainer(config, with_nsp=True)
  assert restore.load_checkpoint(ours, config, prefix) == "tf2"
  batches = records.read_dataset(eval_file, data_lib.SEQ,
                                 data_lib.PREDICTIONS).batch(8).take(3)
  losses = [pretraining_losses.pretraining_loss(f, ours(f)) for f in batches]
  for name in ("masked_lm_loss", "next_sentence_loss", "loss"):
    assert results[name] == pytest.approx(
        np.mean([float(l[name]) for l in losses]), rel=1e-5), name

  # tf-models-official 2.20's model_utils uses tf_keras without importing it.
  tfm_model_utils.tf_keras = tf_keras
  theirs = tfm_model_utils.create_mobilebert_pretrainer(
      tfm_model_utils.BertConfig.from_dict(config.to_dict()))
  # (The optimizer and counters in the checkpoint are not theirs.)
  tf.train.Checkpoint(**theirs.checkpoint_items).read(
      prefix).assert_existing_objects_matched().expect_partial()
  inputs = data_lib.make_batch().take(slice(0, 3)).inputs()
  np.testing.assert_allclose(theirs(inputs)["mlm_logits"],
                             ours(inputs)["mlm_logits"], rtol=1e-5, atol=1e-6)

  tf1_prefix = tf1_io.export_tf1_checkpoint(
      ours, config, str(tmp_path / "tf1" / "model.ckpt"))
  again = build_pretrainer(config, with_nsp=True)
  assert restore.load_checkpoint(again, config, tf1_prefix) == "tf1"
  for a, b in zip(again.weights, ours.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())

  export_path = str(tmp_path / "export")
  assert to_savedmodel.main([
      "to_savedmodel", f"--bert_config_file={data}/config.json",
      f"--model_checkpoint_path={prefix}", f"--vocab_file={data}/vocab.txt",
      f"--export_path={export_path}", f"--seq_length={data_lib.SEQ}"]) == 0
  assert os.path.isdir(os.path.join(export_path, "encoder"))
