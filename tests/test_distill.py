"""`python -m training.distill`: phases, soft freezing, resume, replicas, errors.

In-process `distill.main([...])` runs for the phases and the errors; fresh
processes only where the point is one: the run killed mid-stage and the
two-replica step (`python -m tests.test_distill OUT_DIR`: two logical CPU
devices exist only in a process that makes them before TF starts).
"""

import contextlib
import io
import json
import os
import re
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests import test_training_loop as data_lib
from tests import helpers
from tests import workspace

# The student: 2 blocks of width 16 (no_norm, bottleneck 8); the teacher:
# 3 wider blocks (an inverted bottleneck of 32, LayerNorm), IB-BERT-like.
STUDENT = dict(data_lib.CONFIG, num_hidden_layers=2)
TEACHER = dict(data_lib.CONFIG, num_hidden_layers=3, intra_bottleneck_size=32,
               intermediate_size=32, normalization_type="layer_norm")
TRANSFER_LAYERS = "0,2"
STAGE_STEPS = 3  # steps per stage of the layer-wise phase (2 stages)
DISTILL_STEPS, TRAIN_STEPS = 2 * STAGE_STEPS, 2
_TIMEOUT = 300
WORD_EMBEDDINGS = "masked_lm/embedding_table/.ATTRIBUTES/VARIABLE_VALUE"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  """Configs, training records and a (randomly initialized) teacher."""
  import tf_keras  # pylint: disable=g-import-not-at-top
  from mobilebert_tf import MobileBertConfig, build_pretrainer
  from training import records  # pylint: disable=g-import-not-at-top
  directory = tmp_path_factory.mktemp("distill_data")
  for name, config in (("student.json", STUDENT), ("teacher.json", TEACHER)):
    with open(directory / name, "w") as f:
      json.dump(config, f)
  records.write_batch(str(directory / "train.tfrecord"), data_lib.make_batch())
  records.write_batch(str(directory / "eval.tfrecord"),
                      data_lib.make_batch(seed=2, n=40, lines_seed=3))
  tf_keras.utils.set_random_seed(3)
  teacher = build_pretrainer(MobileBertConfig.from_dict(TEACHER),
                             with_nsp=True)
  tf.train.Checkpoint(**teacher.checkpoint_items).write(
      str(directory / "teacher" / "ckpt-1"))
  return str(directory)


def _flags(directory, model_dir, **overrides):
  values = dict(
      bert_teacher_config_file=os.path.join(directory, "teacher.json"),
      teacher_checkpoint=os.path.join(directory, "teacher", "ckpt-1"),
      bert_config_file=os.path.join(directory, "student.json"),
      input_file=os.path.join(directory, "train.tfrecord"),
      model_dir=model_dir, train_batch_size=8,
      max_seq_length=data_lib.SEQ,
      max_predictions_per_seq=data_lib.PREDICTIONS,
      transfer_teacher_layers=TRANSFER_LAYERS,
      num_distill_steps=DISTILL_STEPS, num_train_steps=TRAIN_STEPS,
      num_warmup_steps=1, learning_rate=1e-2, save_checkpoints_steps=1,
      keep_checkpoint_max=10, steps_per_loop=1, shuffle_buffer_size=50,
      seed=1, deterministic=True)
  values.update(overrides)
  return [f"--{k}={v}" for k, v in values.items() if v is not None]


def _main(args):
  """(exit code, stdout, stderr) of `distill.main(args)`."""
  from training import distill  # pylint: disable=g-import-not-at-top
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = distill.main(["distill"] + list(args))
  return code, out.getvalue(), err.getvalue()


def _variables(prefix):
  reader = tf.train.load_checkpoint(prefix)
  return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
          if k.split("/")[0] in ("encoder", "masked_lm", "next_sentence")
          and ".OPTIMIZER_SLOT" not in k}


def _block(key):
  """The student block of a checkpoint key, or None outside the blocks."""
  for index in range(STUDENT["num_hidden_layers"]):
    # The encoder's blocks are its layer_with_weights-1.. (after the
    # embedding layer) in the functional model's object graph.
    if key.startswith(f"encoder/layer_with_weights-{index + 1}/"):
      return index
  return None


def _changed(before, after, keys):
  return {k for k in keys if not np.array_equal(before[k], after[k])}


# === The phases ===


@pytest.fixture(scope="module")
def progressive(data, tmp_path_factory):
  model_dir = str(tmp_path_factory.mktemp("pkt") / "model")
  code, out, err = _main(_flags(data, model_dir, do_eval=True,
                                eval_input_file=os.path.join(
                                    data, "eval.tfrecord"),
                                eval_batch_size=8, max_eval_steps=2))
  assert code == 0, err + out[-3000:]
  return model_dir, out


def test_progressive_transfer_freezes_by_stage(progressive, data):
  model_dir, out = progressive
  layer_wise = os.path.join(model_dir, "layer_wise")
  first = _variables(os.path.join(layer_wise, "ckpt-1"))
  stage0 = _variables(os.path.join(layer_wise, f"ckpt-{STAGE_STEPS}"))
  stage1 = _variables(os.path.join(layer_wise, f"ckpt-{DISTILL_STEPS}"))
  keys = sorted(first)
  blocks = {k: _block(k) for k in keys}
  assert {b for b in blocks.values()} == {None, 0, 1}
  # Stage 0 trains block 0 only; stage 1 block 1, and block 0 at a tenth.
  changed0 = _changed(first, stage0, keys)
  assert changed0 and {blocks[k] for k in changed0} == {0}
  changed1 = _changed(stage0, stage1, keys)
  assert {blocks[k] for k in changed1} == {0, 1}
  # Embeddings and heads stay frozen in this phase; they are the teacher's
  # (but for the embeddings' normalization: LayerNorm in the teacher).
  outside = [k for k in keys if blocks[k] is None]
  assert not _changed(first, stage1, outside)
  teacher = tf.train.load_checkpoint(os.path.join(data, "teacher", "ckpt-1"))
  copied = [k for k in outside
            if not k.startswith("encoder/layer_with_weights-0/layer_norm/")]
  assert WORD_EMBEDDINGS in copied and len(copied) >= 8
  for key in copied:
    np.testing.assert_array_equal(first[key], teacher.get_tensor(key),
                                  err_msg=key)
  assert "Layer-wise phase (progressive)" in out


def test_pretraining_distillation_trains_everything(progressive, data):
  model_dir, out = progressive
  from mobilebert_tf import MobileBertConfig, build_pretrainer
  start = _variables(os.path.join(model_dir, "layer_wise",
                                  f"ckpt-{DISTILL_STEPS}"))
  final_prefix = os.path.join(model_dir, f"ckpt-{TRAIN_STEPS}")
  final = _variables(final_prefix)
  assert sorted(final) == sorted(start)
  changed = _changed(start, final, final)
  assert {_block(k) for k in changed} == {None, 0, 1}
  # The final checkpoint is an ordinary student pretrainer checkpoint.
  student = build_pretrainer(MobileBertConfig.from_dict(STUDENT),
                             with_nsp=True)
  status = tf.train.Checkpoint(**student.checkpoint_items).restore(
      final_prefix)
  status.assert_existing_objects_matched().expect_partial()
  assert np.array_equal(
      student.encoder_network.get_embedding_table().numpy(),
      final[WORD_EMBEDDINGS])
  with open(os.path.join(model_dir, "eval_results.json")) as f:
    results = json.load(f)
  assert results["step"] == TRAIN_STEPS and results["eval_steps"] == 2
  assert 0.0 <= results["masked_lm_accuracy"] <= 1.0
  for name in ("config.json", "teacher_config.json"):
    assert os.path.exists(os.path.join(model_dir, name))
  assert "Pretraining distillation" in out


def test_finished_run_trains_nothing_more(progressive, data):
  model_dir, _ = progressive
  code, out, err = _main(_flags(data, model_dir))
  assert code == 0, err
  # Phase 2 has checkpoints: phase 1 is done and not rebuilt.
  assert "Layer-wise phase" not in out
  assert f"Nothing to train: step {TRAIN_STEPS} >= {TRAIN_STEPS}" in out


@pytest.mark.parametrize("transfer", ["joint", "auxiliary"])
def test_joint_and_auxiliary_transfer(transfer, data, tmp_path):
  model_dir = str(tmp_path / "model")
  code, out, err = _main(_flags(data, model_dir, knowledge_transfer=transfer,
                                num_distill_steps=2, save_checkpoints_steps=2))
  assert code == 0, err + out[-3000:]
  layer_wise = os.path.join(model_dir, "layer_wise")
  assert os.path.isdir(layer_wise) == (transfer == "joint")
  final = _variables(os.path.join(model_dir, f"ckpt-{TRAIN_STEPS}"))
  assert final
  # Auxiliary transfer adds the layer losses to the pretraining loss.
  assert ("feature_map_transfer_loss" in out.split("Pretraining")[-1]) == (
      transfer == "auxiliary")


# === Resume after SIGKILL, mid-stage ===


def test_killed_mid_stage_resumes_to_the_same_weights(data, progressive,
                                                      tmp_path):
  model_dir = str(tmp_path / "model")
  pause_after = STAGE_STEPS + 1  # in stage 1
  workspace.kill_after_step("training.distill", _flags(data, model_dir),
                            pause_after, str(tmp_path / "killed.log"),
                            timeout=_TIMEOUT)
  layer_wise = os.path.join(model_dir, "layer_wise")
  assert tf.train.latest_checkpoint(layer_wise).endswith(
      f"ckpt-{pause_after}")
  assert not os.path.exists(os.path.join(model_dir, "checkpoint"))
  code, out, err = _main(_flags(data, model_dir))
  assert code == 0, err + out[-3000:]
  assert f"at step {pause_after}" in out
  want_dir = progressive[0]
  for prefix in (os.path.join("layer_wise", f"ckpt-{DISTILL_STEPS}"),
                 f"ckpt-{TRAIN_STEPS}"):
    got = _variables(os.path.join(model_dir, prefix))
    want = _variables(os.path.join(want_dir, prefix))
    for key in want:
      np.testing.assert_array_equal(got[key], want[key], err_msg=key)


# === Bad input ===


@pytest.mark.parametrize("overrides, message", [
    (dict(teacher_checkpoint=None),
     r"--bert_teacher_config_file and --teacher_checkpoint are required"),
    (dict(teacher_checkpoint="/nonexistent/ckpt"), r"--teacher_checkpoint"),
    (dict(knowledge_transfer="auxiliary", layer_wise_warmup=True),
     r"auxiliary has no layer-wise phase"),
    (dict(transfer_teacher_layers="0,5"), r"--transfer_teacher_layers"),
    (dict(transfer_teacher_layers=None), r"--transfer_teacher_layers"),
    (dict(num_distill_steps=1), r"--num_distill_steps=1 must be at least"),
    (dict(distill_temperature=0), r"--distill_temperature must be positive"),
    (dict(input_file="/nonexistent/*.tfrecord"), r"--input_file: no file"),
], ids=["no_teacher", "missing_teacher", "auxiliary_with_layer_wise",
        "layer_out_of_range", "unequal_depths", "too_few_distill_steps",
        "zero_temperature", "no_input"])
def test_bad_input_exits_2_with_one_line(overrides, message, data, tmp_path):
  code, _, err = _main(_flags(data, str(tmp_path / "model"), **overrides))
  assert code == 2
  lines = err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("python -m training.distill")
  assert re.search(message, lines[0]), lines[0]
  assert not os.path.exists(tmp_path / "model" / "checkpoint")


def test_incompatible_teacher_is_refused(data, tmp_path):
  config = dict(TEACHER, hidden_size=24)
  path = tmp_path / "wide.json"
  path.write_text(json.dumps(config))
  code, _, err = _main(_flags(data, str(tmp_path / "model"),
                              bert_teacher_config_file=str(path)))
  assert code == 2 and "hidden_size" in err, err


# === One replica vs two ===


def _replica_main(out_dir):
  """A distillation step's losses and gradients with one and two replicas."""
  cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
  import tf_keras  # pylint: disable=g-import-not-at-top
  from mobilebert_tf import MobileBertConfig
  from training import distillation_losses as losses_lib
  from training import distiller as distiller_lib
  features = data_lib.make_batch().features()
  features = {k: v[:8] for k, v in features.items()}
  layers = distiller_lib.parse_transfer_layers(TRANSFER_LAYERS, 2, 3)
  factors = losses_lib.TransferFactors()
  results = {}
  for name, devices in (("one", ["/cpu:0"]), ("two", ["/cpu:0", "/cpu:1"])):
    strategy = tf.distribute.MirroredStrategy(devices)
    tf_keras.utils.set_random_seed(5)
    with strategy.scope():
      distiller = distiller_lib.build_distiller(
          MobileBertConfig.from_dict(TEACHER),
          MobileBertConfig.from_dict(STUDENT), transfer_layers=layers)
    variables = distiller.trainable_variables

    def replica_fn(batch):
      with tf.GradientTape() as tape:
        outputs = distiller(batch)
        layer = losses_lib.layer_transfer_losses(
            outputs["teacher"], outputs["student"], layers,
            tf.constant([0.0, 1.0]), factors)
        pretraining = losses_lib.pretraining_distillation_loss(
            batch, outputs["student"], outputs["teacher"]["mlm_logits"], 0.5)
        loss = layer["loss"] + pretraining["loss"]
      # Dense (the embedding table's gradient is IndexedSlices).
      return [loss] + [tf.convert_to_tensor(g)
                       for g in tape.gradient(loss, variables)]

    dataset = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices(features).batch(8))
    batch = next(iter(dataset))
    per_replica = strategy.run(tf.function(replica_fn), args=(batch,))
    summed = [strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
              for v in per_replica]
    results[name] = [v.numpy() for v in summed]
    results[name + "_replicas"] = strategy.num_replicas_in_sync
  np.savez(os.path.join(out_dir, "one.npz"), *results["one"])
  np.savez(os.path.join(out_dir, "two.npz"), *results["two"])
  with open(os.path.join(out_dir, "replicas.json"), "w") as f:
    json.dump([results["one_replicas"], results["two_replicas"]], f)


def test_two_replicas_equal_one_replica_with_the_whole_batch(tmp_path):
  helpers.run_test_module("test_distill", tmp_path)
  with open(tmp_path / "replicas.json") as f:
    assert json.load(f) == [1, 2]
  one, two = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
  assert len(one.files) > 10
  loss = one["arr_0"]
  assert loss > 0
  for key in one.files:
    np.testing.assert_allclose(two[key], one[key], rtol=1e-5, atol=1e-7,
                               err_msg=key)


if __name__ == "__main__":
  _replica_main(sys.argv[1])
