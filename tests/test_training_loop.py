"""The training loop (`training.loop`): input position, replicas, learning.

The replica test needs two logical CPU devices, which TF allows only before
it initializes its devices: it runs in one fresh process,
`python -m tests.test_training_loop OUT_DIR`, that trains the same global
batches with one replica and with two.
"""

import json
import os
import sys

import numpy as np
import pytest

from tests import helpers
from tests import workspace

SEQ, PREDICTIONS, VOCAB = 16, 4, 60
BATCH, STEPS = 8, 3
# Smaller than the workspace's tiny model: one block, one FFN (a fast
# trace). Trigram input as tf-models-official's MobileBERT always has.
CONFIG = dict(workspace.TINY_CONFIG, vocab_size=VOCAB, hidden_size=16,
              embedding_size=8, intra_bottleneck_size=8, intermediate_size=16,
              num_attention_heads=2, num_hidden_layers=1,
              num_feedforward_networks=1)


def corpus_lines(n=200, seed=0):
  """Token-id lines drawn from 12 fixed sentences over ids 5..24.

  Learnable at a glance: 20 of the 60 ids occur, and each sentence's
  pieces predict each other.
  """
  sentences = [np.random.default_rng(100 + i).integers(5, 25, size=4 + i % 5)
               for i in range(12)]
  rng = np.random.default_rng(seed)
  return [sentences[i].astype(np.int32) for i in rng.integers(0, 12, n)]


def make_batch(seed=1, n=200, lines_seed=0):
  """Pretraining examples of `corpus_lines` (a `pretraining_data.Batch`):
  the original's instances (`training.pretraining_instances`), documents of
  5 lines, one masking of each."""
  import random  # pylint: disable=g-import-not-at-top
  from training import pretraining_data  # pylint: disable=g-import-not-at-top
  from training import pretraining_instances as pi  # pylint: disable=g-import-not-at-top
  lines = [list(map(int, line)) for line in corpus_lines(n, lines_seed)]
  documents = [lines[i:i + 5] for i in range(0, len(lines), 5)]
  vocab = pi.MaskingVocab(cls=2, sep=3, mask=4, size=VOCAB,
                          continuation=(False,) * VOCAB)
  options = pi.InstanceOptions(max_seq_length=SEQ,
                               max_predictions_per_seq=PREDICTIONS)
  instances = pi.create_instances(documents, vocab, options, dupe_factor=1,
                                  rng=random.Random(seed))
  rows = [pi.instance_features(i, SEQ, PREDICTIONS) for i in instances]
  arrays = {name: np.stack([row[name] for row in rows]) for name in rows[0]}
  arrays["next_sentence_labels"] = arrays["next_sentence_labels"][:, 0]
  return pretraining_data.Batch(**arrays)


def make_trainer(strategy, model_dir, batch, learning_rate=1e-2,
                 num_train_steps=STEPS, weights=None, steps_per_loop=1,
                 shuffle_buffer_size=64, optimizer="lamb", config=None):
  """A pretraining `Trainer` on in-memory examples (the CLI's pieces).

  `optimizer` "sgd" is plain gradient descent: Adam-type optimizers (LAMB,
  AdamW) divide each gradient component by its magnitude, which turns the
  rounding of components that nearly cancel into update differences of up
  to the learning rate; SGD keeps a difference in the summed gradients a
  difference of float32 rounding in the weights.
  """
  import functools  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top
  from mobilebert_tf import MobileBertConfig
  from mobilebert_tf import build_pretrainer
  from mobilebert_tf import optimization  # pylint: disable=g-import-not-at-top
  from training import loop  # pylint: disable=g-import-not-at-top
  from training import pretrain  # pylint: disable=g-import-not-at-top
  from training import pretraining_losses  # pylint: disable=g-import-not-at-top
  config = MobileBertConfig.from_dict(config or CONFIG)
  features = batch.features()
  make_examples = functools.partial(tf.data.Dataset.from_tensor_slices,
                                    features)

  def input_fn(context, skip):
    return loop.deterministic_input_fn(
        make_examples, BATCH, seed=0, examples_to_skip=skip,
        shuffle_buffer_size=shuffle_buffer_size)(context)

  tf_keras.utils.set_random_seed(0)
  with strategy.scope():
    model = build_pretrainer(config, with_nsp=True)
    if weights is not None:
      model.set_weights(weights)
    if optimizer == "sgd":
      optimizer = tf_keras.optimizers.legacy.SGD(learning_rate)
    else:
      optimizer = optimization.create_optimizer(
          optimizer, learning_rate, num_train_steps=num_train_steps)
    return loop.Trainer(
        strategy, model, optimizer, pretraining_losses.pretraining_loss,
        model_dir=model_dir, train_input_fn=input_fn,
        global_batch_size=BATCH, checkpoint_items=model.checkpoint_items,
        loss_names=("loss", "masked_lm_loss", "next_sentence_loss"),
        metrics=pretrain.make_metrics(),
        update_metrics=pretrain.update_metrics,
        save_checkpoints_steps=100, steps_per_loop=steps_per_loop,
        progress=False, log=lambda line: None)


# === Input position ===


def _ids(dataset, take):
  return [int(x) for x in dataset.take(take).unbatch().as_numpy_iterator()]


def test_input_steps_same_examples_for_any_pipelines_and_skip():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from training import loop  # pylint: disable=g-import-not-at-top
  make = lambda: tf.data.Dataset.range(10)  # 10 examples, batch 4: epochs mix
  fn = lambda skip: loop.deterministic_input_fn(make, 4, seed=3,
                                                examples_to_skip=skip,
                                                shuffle_buffer_size=6)
  one = _ids(fn(0)(tf.distribute.InputContext(1, 0, 1)), 6)
  assert sorted(one[:10]) == list(range(10))  # every example each epoch
  assert one[:10] != list(range(10))  # shuffled
  # Two workers with one replica each: each takes a 2-example half of
  # every step; together the same examples as one worker.
  halves = [_ids(fn(0)(tf.distribute.InputContext(2, w, 2)), 6)
            for w in (0, 1)]
  for step in range(6):
    both = halves[0][2 * step:2 * step + 2] + halves[1][2 * step:2 * step + 2]
    assert sorted(both) == sorted(one[4 * step:4 * step + 4])
  # Resuming after 2 steps (8 examples) continues the same stream.
  assert _ids(fn(8)(tf.distribute.InputContext(1, 0, 1)), 4) == one[8:]
  halves = [_ids(fn(8)(tf.distribute.InputContext(2, w, 2)), 2)
            for w in (0, 1)]
  assert sorted(halves[0][:2] + halves[1][:2]) == sorted(one[8:12])


def test_trainer_rejects_bad_arguments(tmp_path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from training import loop  # pylint: disable=g-import-not-at-top
  strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
  model = tf.Module()
  with pytest.raises(ValueError, match="steps_per_loop"):
    loop.Trainer(strategy, model, None, None, str(tmp_path),
                 steps_per_loop=0)
  with pytest.raises(ValueError, match="loss_names"):
    loop.Trainer(strategy, model, None, None, str(tmp_path),
                 loss_names=("masked_lm_loss",))


# === One replica vs two ===


def _replica_main(out_dir):
  """Trains STEPS steps with one replica, then two; writes losses, weights."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
  batch = make_batch()
  strategies = {"one": tf.distribute.OneDeviceStrategy("/cpu:0"),
                "two": tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])}
  results, initial = {}, None
  for name, strategy in strategies.items():
    trainer = make_trainer(strategy, os.path.join(out_dir, name), batch,
                           weights=initial, optimizer="sgd",
                           learning_rate=0.5)
    if initial is None:
      initial = trainer.model.get_weights()
      np.savez(os.path.join(out_dir, "initial.npz"), *initial)
    losses = [trainer.train(step)["loss"] for step in range(1, STEPS + 1)]
    results[name] = dict(
        replicas=strategy.num_replicas_in_sync, losses=losses,
        step=int(trainer.step.numpy()))
    np.savez(os.path.join(out_dir, f"{name}.npz"),
             *trainer.model.get_weights())
  with open(os.path.join(out_dir, "results.json"), "w") as f:
    json.dump(results, f)


def test_two_replicas_equal_one_replica_with_the_whole_batch(tmp_path):
  helpers.run_test_module("test_training_loop", tmp_path)
  with open(tmp_path / "results.json") as f:
    results = json.load(f)
  assert results["one"]["replicas"] == 1 and results["two"]["replicas"] == 2
  assert results["one"]["step"] == results["two"]["step"] == STEPS
  np.testing.assert_allclose(results["two"]["losses"],
                             results["one"]["losses"], rtol=1e-5)
  one, two = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
  initial = np.load(tmp_path / "initial.npz")
  for key in one.files:
    np.testing.assert_allclose(two[key], one[key], rtol=1e-5, atol=1e-7,
                               err_msg=key)
  # The steps trained: the weights moved far more than the tolerance.
  moved = max(np.max(np.abs(one[k] - initial[k])) for k in one.files)
  assert moved > 1e-3


# === Learning ===


@pytest.mark.slow
def test_loss_decreases(tmp_path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  steps = 200
  # The workspace's tiny model (two blocks of width 32) and AdamW: in this
  # many steps one block of 16, or LAMB, learn the unigram but hardly the
  # context.
  trainer = make_trainer(tf.distribute.OneDeviceStrategy("/cpu:0"),
                         str(tmp_path), make_batch(n=400), optimizer="adamw",
                         learning_rate=1e-2, num_train_steps=steps,
                         steps_per_loop=50,
                         config=dict(workspace.TINY_CONFIG, vocab_size=VOCAB))
  # Other examples (other pairs, other masks) of the same sentences.
  held_out = make_batch(seed=7, n=400, lines_seed=5).features()
  evaluate = lambda: trainer.evaluate(
      lambda context: tf.data.Dataset.from_tensor_slices(held_out).batch(
          BATCH), max_steps=20)
  before = evaluate()
  trainer.train(steps)
  assert trainer.train(steps) == {}  # nothing left to train
  after = evaluate()
  # At first about ln(60) + ln(2); knowing only which 20 ids occur gives
  # ln(20) for the masked LM: the model must use the context to get below.
  assert before["masked_lm_loss"] > np.log(40), before
  assert after["masked_lm_loss"] < np.log(20) - 0.5, after
  # Twice the accuracy of always guessing the most frequent masked piece.
  labels = held_out["masked_lm_ids"][held_out["masked_lm_weights"] > 0]
  guess = np.max(np.bincount(labels)) / len(labels)
  assert after["masked_lm_accuracy"] > 2 * guess, (after, guess)


if __name__ == "__main__":
  _replica_main(sys.argv[1])
