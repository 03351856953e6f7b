r"""Distils a MobileBERT student from a pretrained teacher, as the paper does.

  python -m training.distill \
    --bert_teacher_config_file=uncased_L-24_H-1024_B-512_A-4 \
    --teacher_checkpoint=TEACHER_DIR \
    --bert_config_file=uncased_L-24_H-128_B-512_A-4_F-4_OPT \
    --input_file='data/train-*.tfrecord' --model_dir=OUT \
    --train_batch_size=256 --num_distill_steps=240000 \
    --num_train_steps=500000 --num_warmup_steps=10000 --learning_rate=1e-3

The teacher (an IB-BERT pretrained with `python -m training.pretrain`, or
any checkpoint the library reads) is frozen; the student learns from it in
two phases, as google-research `mobilebert/run_pretraining.py`:

1. Layer-wise transfer (`--layer_wise_warmup`, `OUT/layer_wise/`,
   `--num_distill_steps`): the student starts with the teacher's embeddings
   and heads (`training.distiller.copy_non_encoder_weights`), then each
   student block learns the feature maps, attention distributions and
   mean/variance statistics of its teacher block
   (`training.distillation_losses.layer_transfer_losses`, weighted by
   `--hidden_distill_factor`, `--attention_distill_factor`,
   `--beta_distill_factor`, `--gamma_distill_factor`).
   `--knowledge_transfer=progressive` (the paper's PKT, default): one
   stage per block, the current block at full rate, earlier ones at a tenth,
   later ones, the embeddings and the heads frozen
   (`training.layer_wise_schedule`); `joint` (JKT): all blocks' losses at
   once, every block trained.
2. Pretraining distillation (`OUT/`, `--num_train_steps`): every student
   variable trains on the masked-LM loss against `ratio * ground truth +
   (1 - ratio) * teacher` (`--distill_ground_truth_ratio`, teacher logits
   at `--distill_temperature`) plus next-sentence prediction on the ground
   truth, with linear warm-up and decay. `--knowledge_transfer=auxiliary`
   (AKT) skips phase 1 and adds all layer losses to this phase's loss.

Each phase checkpoints and resumes as `training.pretrain` does (model,
optimizer, step, input position; `training.loop`): a run killed at any
moment and started again with the same command continues at the right
phase, stage and step. The final `OUT/ckpt-<num_train_steps>` is an
ordinary pretrainer checkpoint of the student (`checkpoint_items`): it
restores into `build_pretrainer`, tf-models-official, `training.pretrain
--init_checkpoint`, and exports with `python -m export.to_savedmodel`.
`OUT/config.json` is the student's config, `OUT/teacher_config.json` the
teacher's.

Exit codes: 0 done; 2 bad input or flags (one line on stderr), or a NaN or
infinite loss (training stopped, the last good checkpoint kept).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if __name__ == "__main__":  # A command line: see `mobilebert_tf.cli`.
  os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import json
import sys
from typing import Dict, Sequence

from absl import flags

from mobilebert_tf import _compat
from mobilebert_tf import cli
from training import pretrain

_PROGRAM = "python -m training.distill"
LAYER_WISE_DIR = "layer_wise"
TEACHER_CONFIG_FILE = "teacher_config.json"
TRANSFERS = ("progressive", "joint", "auxiliary")
_LAYER_LOSS_NAMES = ("feature_map_transfer_loss", "attention_transfer_loss",
                     "mean_transfer_loss", "variance_transfer_loss")

InputError = pretrain.InputError


# === Flags ===


def _define_flags() -> flags.FlagValues:
  values = pretrain.define_training_flags(flags.FlagValues())
  define = dict(flag_values=values)
  flags.DEFINE_string("bert_teacher_config_file", None, "The teacher's "
                      "bert_config.json, or a preset name.", **define)
  flags.DEFINE_string("teacher_checkpoint", None, "The pretrained teacher: a "
                      "training.pretrain model_dir or checkpoint prefix (TF2, "
                      "tf-models-official or original TF1).", **define)
  flags.DEFINE_boolean("layer_wise_warmup", True, "Run the layer-wise "
                       "transfer phase before pretraining distillation.",
                       **define)
  flags.DEFINE_enum("knowledge_transfer", "progressive", list(TRANSFERS),
                    "progressive: a stage per block (PKT); joint: all blocks "
                    "at once (JKT); auxiliary: no layer-wise phase, the layer "
                    "losses added to pretraining distillation (AKT).",
                    **define)
  flags.DEFINE_integer("num_distill_steps", 100000, "Steps of the layer-wise "
                       "phase (split evenly over the student's blocks).",
                       lower_bound=1, **define)
  flags.DEFINE_float("distill_temperature", 1.0, "Multiplies the teacher's "
                     "sequence output before its masked-LM head (the "
                     "original's temperature).", **define)
  flags.DEFINE_float("distill_ground_truth_ratio", 0.5, "Weight of the "
                     "ground truth in the masked-LM target (the rest: the "
                     "teacher's distribution).", lower_bound=0.0,
                     upper_bound=1.0, **define)
  flags.DEFINE_float("attention_distill_factor", 1.0, "Weight of the "
                     "attention transfer loss.", lower_bound=0.0, **define)
  flags.DEFINE_float("hidden_distill_factor", 100.0, "Weight of the "
                     "feature-map transfer loss.", lower_bound=0.0, **define)
  flags.DEFINE_float("beta_distill_factor", 5000.0, "Weight of the mean "
                     "transfer loss.", lower_bound=0.0, **define)
  flags.DEFINE_float("gamma_distill_factor", 5.0, "Weight of the variance "
                     "transfer loss.", lower_bound=0.0, **define)
  flags.DEFINE_string("transfer_teacher_layers", None, "The teacher block of "
                      "each student block, comma-separated (default: block i "
                      "learns from block i).", **define)
  return values


def _usage(values: flags.FlagValues) -> str:
  return (f"Usage: {_PROGRAM} --bert_teacher_config_file=JSON "
          "--teacher_checkpoint=CKPT --bert_config_file=JSON --model_dir=DIR "
          "(--input_file=TFRECORDS | --text_file=TXT --vocab_file=VOCAB) "
          "[--num_distill_steps --num_train_steps --learning_rate ...]\n\n"
          "Distils a MobileBERT student from a pretrained teacher: layer-wise "
          "knowledge transfer, then pretraining distillation; a killed run "
          "resumes.\n\nFlags:\n" + values.get_help())


def check_flags(values) -> None:
  """Checks the flag combinations (`pretrain.check_flags` and distill's).

  Raises:
    InputError: naming the flags.
  """
  pretrain.check_flags(values)
  if values.knowledge_transfer == "auxiliary" and (
      values["layer_wise_warmup"].present and values.layer_wise_warmup):
    raise InputError("--knowledge_transfer=auxiliary has no layer-wise phase "
                     "(its layer losses join pretraining distillation); drop "
                     "--layer_wise_warmup or pick progressive or joint")
  if values.distill_temperature <= 0:
    raise InputError(f"--distill_temperature must be positive; received "
                     f"{values.distill_temperature}")


def _phases(values):
  """(layer-wise phase or None, layer losses in phase 2)."""
  if values.knowledge_transfer == "auxiliary":
    return None, True
  return (values.knowledge_transfer if values.layer_wise_warmup else None,
          False)


# === Phases ===


def _layer_loss_fn(transfer_layers, factors, gates):
  from training import distillation_losses  # pylint: disable=g-import-not-at-top

  def loss_fn(features, outputs):
    del features  # The layer losses compare the two models' states only.
    return distillation_losses.layer_transfer_losses(
        outputs["teacher"], outputs["student"], transfer_layers, gates(),
        factors)

  return loss_fn


def _train_layer_wise(values, strategy, distiller, transfer_layers, factors,
                      input_fn, log, metrics_dir):
  """Phase 1 in `model_dir/layer_wise`; returns the Trainer's results."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from mobilebert_tf import optimization  # pylint: disable=g-import-not-at-top
  from training import distiller as distiller_lib  # pylint: disable=g-import-not-at-top
  from training import distribution  # pylint: disable=g-import-not-at-top
  from training import layer_wise_schedule  # pylint: disable=g-import-not-at-top
  from training import loop  # pylint: disable=g-import-not-at-top
  num_blocks = len(transfer_layers)
  progressive = values.knowledge_transfer == "progressive"
  with strategy.scope():
    variables = distiller.encoder_block_variables()
    if progressive:
      if values.optimizer != "lamb":
        log(f"Progressive transfer trains with the original's soft-freezing "
            f"LAMB; --optimizer={values.optimizer} applies to the other "
            "phase.")
      schedule = layer_wise_schedule.LayerWiseSchedule.from_total_steps(
          num_blocks, values.num_distill_steps)
      inner = layer_wise_schedule.create_layer_wise_optimizer(
          values.learning_rate, schedule, layer_wise_schedule.
          block_variable_map(distiller.student.encoder_network),
          weight_decay_rate=values.weight_decay_rate)
      gates = lambda: schedule.layer_gates(inner.iterations)
    else:
      # The original's layer-wise phase: a constant base rate.
      inner = optimization.create_optimizer(
          values.optimizer, values.learning_rate, values.num_distill_steps,
          weight_decay_rate=values.weight_decay_rate,
          end_learning_rate=values.learning_rate)
      gates = lambda: tf.ones([num_blocks])
    optimizer = distribution.wrap_optimizer(inner, values.mixed_precision)
    trainer = loop.Trainer(
        strategy, distiller, optimizer,
        _layer_loss_fn(transfer_layers, factors, gates),
        model_dir=metrics_dir, train_input_fn=input_fn,
        global_batch_size=values.train_batch_size,
        checkpoint_items=distiller.checkpoint_items,
        loss_names=("loss",) + _LAYER_LOSS_NAMES,
        save_checkpoints_steps=values.save_checkpoints_steps,
        keep_checkpoint_max=values.keep_checkpoint_max,
        steps_per_loop=values.steps_per_loop, log=log,
        on_loop_end=pretrain.pause_hook(), variables=variables)
  if trainer.latest_checkpoint is None:
    copied = distiller_lib.copy_non_encoder_weights(
        distiller.teacher, distiller.student, log=log)
    log(f"Layer-wise phase: the student starts with the teacher's "
        f"{len(copied)} embedding and head variables.")
  log(f"Layer-wise phase ({values.knowledge_transfer}): "
      f"{values.num_distill_steps} steps in {metrics_dir}.")
  return trainer.train(values.num_distill_steps)


def _distillation_loss_fn(ratio, transfer_layers, factors, with_layers):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from training import distillation_losses  # pylint: disable=g-import-not-at-top

  def loss_fn(features, outputs):
    result = dict(distillation_losses.pretraining_distillation_loss(
        features, outputs["student"], outputs["teacher"]["mlm_logits"],
        ratio))
    if with_layers:
      layer = distillation_losses.layer_transfer_losses(
          outputs["teacher"], outputs["student"], transfer_layers,
          tf.ones([len(transfer_layers)]), factors)
      result.update({n: layer[n] for n in _LAYER_LOSS_NAMES})
      result["loss"] = result["loss"] + layer["loss"]
    return result

  return loss_fn


def _pretraining_trainer(values, strategy, distiller, transfer_layers,
                         factors, with_layers, input_fn, log):
  """Phase 2's Trainer in `model_dir` (the teacher only where it is used)."""
  from mobilebert_tf import optimization  # pylint: disable=g-import-not-at-top
  from training import distribution  # pylint: disable=g-import-not-at-top
  from training import loop  # pylint: disable=g-import-not-at-top
  from training import pretraining_losses  # pylint: disable=g-import-not-at-top
  ratio = values.distill_ground_truth_ratio
  uses_teacher = ratio < 1.0 or with_layers
  names = pretrain.LOSS_NAMES + (_LAYER_LOSS_NAMES if with_layers else ())
  with strategy.scope():
    optimizer = distribution.wrap_optimizer(
        optimization.create_optimizer(
            values.optimizer, learning_rate=values.learning_rate,
            num_train_steps=values.num_train_steps,
            num_warmup_steps=min(values.num_warmup_steps,
                                 values.num_train_steps),
            weight_decay_rate=values.weight_decay_rate),
        values.mixed_precision)
    if uses_teacher:
      model = distiller
      loss_fn = _distillation_loss_fn(ratio, transfer_layers, factors,
                                      with_layers)
      update_metrics = lambda metrics, features, outputs: (
          pretrain.update_metrics(metrics, features, outputs["student"]))
    else:
      # Ground truth only: the original trains the student alone, with
      # dropout.
      model = distiller.student
      loss_fn = lambda features, outputs: (
          pretraining_losses.pretraining_loss(features, outputs))
      update_metrics = pretrain.update_metrics
    return loop.Trainer(
        strategy, model, optimizer, loss_fn, model_dir=values.model_dir,
        train_input_fn=input_fn, global_batch_size=values.train_batch_size,
        checkpoint_items=distiller.checkpoint_items, loss_names=names,
        metrics=pretrain.make_metrics(), update_metrics=update_metrics,
        save_checkpoints_steps=values.save_checkpoints_steps,
        keep_checkpoint_max=values.keep_checkpoint_max,
        steps_per_loop=values.steps_per_loop, log=log,
        on_loop_end=pretrain.pause_hook(),
        variables=distiller.student.trainable_variables)


# === The run ===


def distill(values, log=print) -> Dict[str, float]:
  """Distils (the CLI minus parsing).

  Returns:
    The evaluation results with --do_eval, else the last training loop's
    losses and metrics.

  Raises:
    InputError, ValueError, FileNotFoundError: bad flags or files (before
      anything is written).
    loop.NonFiniteLossError: a loss became NaN or infinite.
    tf.errors.OpError: from the input pipeline during training.
  """
  from mobilebert_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  from training import distiller as distiller_lib  # pylint: disable=g-import-not-at-top
  from training import distillation_losses  # pylint: disable=g-import-not-at-top
  if not values.bert_teacher_config_file or not values.teacher_checkpoint:
    raise InputError("--bert_teacher_config_file and --teacher_checkpoint "
                     "are required (the pretrained teacher)")
  student_config = config_lib.load_config(values.bert_config_file)
  teacher_config = config_lib.load_config(values.bert_teacher_config_file)
  for flag, config in (("bert_config_file", student_config),
                       ("bert_teacher_config_file", teacher_config)):
    if values.max_seq_length > config.max_position_embeddings:
      raise InputError(f"--max_seq_length={values.max_seq_length} exceeds "
                       f"the max_position_embeddings of --{flag} "
                       f"({config.max_position_embeddings})")
  layer_phase, with_layers = _phases(values)
  factors = distillation_losses.TransferFactors(
      attention=values.attention_distill_factor,
      hidden=values.hidden_distill_factor, beta=values.beta_distill_factor,
      gamma=values.gamma_distill_factor)
  transfers_layers = layer_phase is not None or with_layers
  try:
    transfer_layers = distiller_lib.parse_transfer_layers(
        values.transfer_teacher_layers, student_config.num_hidden_layers,
        teacher_config.num_hidden_layers)
    distiller_lib.check_compatible(
        teacher_config, student_config, transfer_layers,
        attention=transfers_layers and factors.attention != 0)
  except ValueError as e:
    raise InputError(cli.first_line(e, limit=None)) from None
  if layer_phase == "progressive" and (
      values.num_distill_steps < student_config.num_hidden_layers):
    raise InputError(f"--num_distill_steps={values.num_distill_steps} must "
                     f"be at least the student's "
                     f"{student_config.num_hidden_layers} blocks (one stage "
                     "per block)")
  train_paths = []
  if values.do_train:
    train_paths = pretrain.input_paths(
        "input_file" if values.input_file else "text_file",
        values.input_file or values.text_file)
    if values.vocab_file and not os.path.isfile(values.vocab_file):
      raise InputError(f"--vocab_file: {values.vocab_file} does not exist")
  eval_paths = (pretrain.input_paths("eval_input_file", values.eval_input_file)
                if values.do_eval else [])
  config_path = pretrain.check_model_dir(values.model_dir, student_config)

  from training import distribution  # pylint: disable=g-import-not-at-top
  strategy = distribution.get_strategy(values.distribution_strategy,
                                       tpu=values.tpu)
  import tf_keras  # pylint: disable=g-import-not-at-top
  pretrain.check_batch_sizes(values, strategy)
  if values.input_file and values.do_train:
    pretrain.check_records(train_paths, "input_file", values.max_seq_length,
                           values.max_predictions_per_seq,
                           student_config.vocab_size)
  if eval_paths:
    pretrain.check_records(eval_paths, "eval_input_file",
                           values.max_seq_length,
                           values.max_predictions_per_seq,
                           student_config.vocab_size)
  if values.text_file and values.do_train:
    from mobilebert_tf import preprocessing  # pylint: disable=g-import-not-at-top
    preprocessing.check_vocab(values.vocab_file, student_config)

  from mobilebert_tf import files  # pylint: disable=g-import-not-at-top
  tf_keras.utils.set_random_seed(values.seed)
  previous_policy = tf_keras.mixed_precision.global_policy()
  distribution.set_mixed_precision(values.mixed_precision)
  with _compat.op_determinism(values.deterministic):
    try:
      with strategy.scope():
        distiller = distiller_lib.build_distiller(
            teacher_config, student_config,
            temperature=values.distill_temperature,
            attention=transfers_layers and factors.attention != 0,
            transfer_layers=transfer_layers)
      distiller_lib.load_teacher_checkpoint(
          distiller.teacher, teacher_config, values.teacher_checkpoint,
          log=log)
      input_fn = (pretrain.make_train_input_fn(values, student_config,
                                               train_paths)
                  if values.do_train else None)
      final = _pretraining_trainer(values, strategy, distiller,
                                   transfer_layers, factors, with_layers,
                                   input_fn, log)
      if final.latest_checkpoint:
        from checkpoints import restore  # pylint: disable=g-import-not-at-top
        restore.check_tf2_fits(distiller.student, final.latest_checkpoint)
      elif not values.do_train:
        raise InputError(f"--model_dir {values.model_dir} has no checkpoint "
                         "to evaluate; train first")
      if final.is_chief:
        if config_path is None:
          files.write_text(os.path.join(values.model_dir,
                                        pretrain.CONFIG_FILE),
                           student_config.to_json_string())
        files.write_text(os.path.join(values.model_dir, TEACHER_CONFIG_FILE),
                         teacher_config.to_json_string(), overwrite=True)
      log(f"{distribution.replica_note(strategy, values.train_batch_size)}; "
          f"policy {values.mixed_precision}; model_dir {values.model_dir}.")
      results = {}
      if values.do_train:
        if final.latest_checkpoint is None:
          if layer_phase is not None:
            _train_layer_wise(values, strategy, distiller, transfer_layers,
                              factors, input_fn, log, os.path.join(
                                  values.model_dir, LAYER_WISE_DIR))
          else:
            copied = distiller_lib.copy_non_encoder_weights(
                distiller.teacher, distiller.student, log=log)
            log(f"The student starts with the teacher's {len(copied)} "
                "embedding and head variables.")
        log(f"Pretraining distillation: {values.num_train_steps} steps in "
            f"{values.model_dir}.")
        results = final.train(values.num_train_steps)
      else:
        final.restore(model_only=True)
      if values.do_eval:
        results = final.evaluate(
            pretrain.make_eval_input_fn(values, student_config, eval_paths,
                                        values.distribution_strategy ==
                                        "tpu"),
            max_steps=values.max_eval_steps)
        if final.is_chief:
          files.write_text(
              os.path.join(values.model_dir, pretrain.EVAL_RESULTS_FILE),
              json.dumps(results, indent=2, sort_keys=True) + "\n",
              overwrite=True)
        log("Evaluation: " + json.dumps(results, sort_keys=True))
      return results
    finally:
      tf_keras.mixed_precision.set_global_policy(previous_policy)


def main(argv: Sequence[str]) -> int:
  """Runs the CLI on `argv` (argv[0]: the program name); returns exit code."""
  return pretrain.run_main(_PROGRAM, argv, _define_flags, _usage,
                           ("bert_config_file", "model_dir"), check_flags,
                           distill)


if __name__ == "__main__":
  sys.exit(main(sys.argv))
