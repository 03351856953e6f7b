r"""Pretrains MobileBERT (masked LM + next sentence) on tf.distribute.

From BERT pretraining records (`python -m training.create_pretraining_data`,
or google-research/bert's `create_pretraining_data.py`):

  python -m training.pretrain \
    --bert_config_file=bert_config.json \
    --input_file='data/train-*.tfrecord' \
    --model_dir=OUT --train_batch_size=256 --max_seq_length=128 \
    --max_predictions_per_seq=20 --num_train_steps=100000 \
    --num_warmup_steps=10000 --learning_rate=1e-3 \
    [--distribution_strategy=mirrored --mixed_precision=mixed_bfloat16]

or from plain text with masks drawn anew for every example each epoch
(`training.dynamic_masking`):

  python -m training.pretrain --bert_config_file=CONFIG.json \
    --text_file=corpus.txt --vocab_file=vocab.txt --model_dir=OUT ...

The flags are those of the original `run_pretraining.py`. The model is
`mobilebert_tf.pretrainer.build_pretrainer(config, with_nsp=True)`, the
loss `training.pretraining_losses.pretraining_loss` (masked LM + next
sentence, scaled for any number of replicas), the optimizer LAMB (or
AdamW) from `mobilebert_tf.optimization.create_optimizer`: linear warm-up,
linear decay, weight decay except biases and normalization, gradients
clipped at global norm 1.

Fault tolerance: checkpoints `OUT/ckpt-<step>` every
`--save_checkpoints_steps` hold the model, the optimizer, the step and the
input position (`training.loop`); a run killed at any moment and started
again with the same command continues from the latest complete one. With
`--deterministic` (op determinism) the result is the same, bit for bit, as
an uninterrupted run (for models without dropout). `OUT/config.json` is the
model config; a `--model_dir` trained with another config is refused.

Evaluation (`--do_eval`): masked-LM and next-sentence accuracies and losses
on `--eval_input_file`, printed and written to `OUT/eval_results.json`.

Exit codes: 0 done; 2 bad input or flags (one line on stderr), or a NaN or
infinite loss (training stopped, the last good checkpoint kept).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if __name__ == "__main__":  # A command line: see `mobilebert_tf.cli`.
  os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import functools
import json
import re
import struct
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

from absl import flags

from mobilebert_tf import _compat
from mobilebert_tf import cli

# TensorFlow and the model code are imported where first needed: usage
# errors stay fast, and nothing touches the TF runtime before the strategy
# exists (MultiWorkerMirroredStrategy configures it).

_PROGRAM = "python -m training.pretrain"
CONFIG_FILE = "config.json"
EVAL_RESULTS_FILE = "eval_results.json"
# Test hook: sleep after this step (so a test can SIGKILL a run mid-way).
PAUSE_ENV = "MOBILEBERT_TF_TEST_PAUSE_AFTER_STEP"
LOSS_NAMES = ("loss", "masked_lm_loss", "next_sentence_loss")
# Record features -> the flag that sets their length.
_LENGTH_FLAGS = {"input_ids": "max_seq_length",
                 "input_mask": "max_seq_length",
                 "segment_ids": "max_seq_length",
                 "masked_lm_positions": "max_predictions_per_seq",
                 "masked_lm_ids": "max_predictions_per_seq",
                 "masked_lm_weights": "max_predictions_per_seq"}


class InputError(ValueError):
  """Bad flags or input files; the message is one line naming the fix."""


# === Flags ===


def define_loop_flags(values: flags.FlagValues) -> flags.FlagValues:
  """Defines the flags of `training.loop.Trainer`'s runs in `values`.

  The strategy, the precision policy, checkpoints, steps per loop and op
  determinism: every trainer CLI (pretraining, distillation, SQuAD) has them.
  """
  define = dict(flag_values=values)
  flags.DEFINE_integer("save_checkpoints_steps", 1000, "Save a checkpoint "
                       "every this many steps.", lower_bound=1, **define)
  flags.DEFINE_integer("keep_checkpoint_max", 5, "Checkpoints kept.",
                       lower_bound=1, **define)
  flags.DEFINE_enum("distribution_strategy", "one_device",
                    ["one_device", "mirrored", "multi_worker_mirrored", "tpu"],
                    "tf.distribute strategy (multi_worker_mirrored reads "
                    "TF_CONFIG).", **define)
  flags.DEFINE_string("tpu", "", "With --distribution_strategy=tpu: the "
                      "TPU name or address ('' for a TPU VM).", **define)
  flags.DEFINE_enum("mixed_precision", "float32",
                    ["float32", "mixed_bfloat16", "mixed_float16"],
                    "Compute dtype policy (logits and losses stay float32).",
                    **define)
  flags.DEFINE_integer("steps_per_loop", 100, "Steps per tf.function call "
                       "(progress and NaN checks in between).",
                       lower_bound=1, **define)
  flags.DEFINE_boolean("deterministic", False, "Enable TF op determinism: "
                       "a resumed run gives the same weights as an "
                       "uninterrupted one (slower on GPUs).", **define)
  return values


def define_training_flags(values: flags.FlagValues) -> flags.FlagValues:
  """Defines the flags every pretraining-type trainer shares in `values`.

  The model (`--bert_config_file`), the data (records or text), the
  schedule, the strategy, checkpoints and evaluation; `training.distill`
  adds its own to these.
  """
  define = dict(flag_values=values)
  flags.DEFINE_string("bert_config_file", None, "The model's "
                      "bert_config.json, or a preset name.", **define)
  flags.DEFINE_string("input_file", None, "Pretraining TFRecords: "
                      "comma-separated file globs.", **define)
  flags.DEFINE_string("text_file", None, "Instead of --input_file: plain "
                      "text (comma-separated globs), masked on the fly.",
                      **define)
  flags.DEFINE_string("vocab_file", None, "With --text_file: the WordPiece "
                      "vocabulary.", **define)
  flags.DEFINE_boolean("do_lower_case", True, "With --text_file: lower-case "
                       "and strip accents (uncased models).", **define)
  flags.DEFINE_float("masked_lm_prob", 0.15, "With --text_file: the "
                     "fraction of pieces masked.", lower_bound=0.0,
                     upper_bound=1.0, **define)
  flags.DEFINE_string("model_dir", None, "Checkpoints, summaries, "
                      "config.json, eval_results.json.", **define)
  flags.DEFINE_integer("train_batch_size", 32, "Global training batch size.",
                       lower_bound=1, **define)
  flags.DEFINE_integer("eval_batch_size", 8, "Global evaluation batch size.",
                       lower_bound=1, **define)
  flags.DEFINE_integer("max_seq_length", 128, "Sequence length of the "
                       "records.", lower_bound=5, **define)
  flags.DEFINE_integer("max_predictions_per_seq", 20, "Masked-LM "
                       "predictions per sequence of the records.",
                       lower_bound=1, **define)
  flags.DEFINE_integer("num_train_steps", 100000, "Training steps.",
                       lower_bound=1, **define)
  flags.DEFINE_integer("num_warmup_steps", 10000, "Linear warm-up steps.",
                       lower_bound=0, **define)
  flags.DEFINE_float("learning_rate", 5e-5, "Peak learning rate.",
                     lower_bound=0.0, **define)
  flags.DEFINE_enum("optimizer", "lamb", ["lamb", "adamw"], "Optimizer.",
                    **define)
  flags.DEFINE_float("weight_decay_rate", 0.01, "Decoupled weight decay "
                     "(not for biases and normalization).", lower_bound=0.0,
                     **define)
  define_loop_flags(values)
  flags.DEFINE_boolean("do_train", True, "Train.", **define)
  flags.DEFINE_boolean("do_eval", False, "Evaluate on --eval_input_file.",
                       **define)
  flags.DEFINE_string("eval_input_file", None, "Held-out pretraining "
                      "TFRecords (comma-separated globs).", **define)
  flags.DEFINE_integer("max_eval_steps", 100, "Evaluation batches.",
                       lower_bound=1, **define)
  flags.DEFINE_integer("shuffle_buffer_size", 10000, "Examples in the "
                       "shuffle buffer.", lower_bound=0, **define)
  flags.DEFINE_integer("seed", 12345, "Seed of the initialization, the "
                       "shuffle and the masking.", **define)
  return values


def _define_flags() -> flags.FlagValues:
  values = define_training_flags(flags.FlagValues())
  flags.DEFINE_string("init_checkpoint", None, "Initial weights (TF2 or "
                      "original TF1 checkpoint) for a fresh --model_dir.",
                      flag_values=values)
  return values


def _usage(values: flags.FlagValues) -> str:
  return (f"Usage: {_PROGRAM} --bert_config_file=JSON --model_dir=DIR "
          "(--input_file=TFRECORDS | --text_file=TXT --vocab_file=VOCAB) "
          "[--train_batch_size --num_train_steps --learning_rate ...]\n\n"
          "Pretrains MobileBERT (masked LM + next sentence) with checkpoints "
          "that a killed run resumes from.\n\nFlags:\n" + values.get_help())


def input_paths(flag: str, text: str) -> List[str]:
  """The files of `--flag`'s comma-separated globs (`files.expand_globs`)."""
  from mobilebert_tf import files  # pylint: disable=g-import-not-at-top
  try:
    return files.expand_globs(text, f"--{flag}")
  except FileNotFoundError as e:
    raise InputError(str(e)) from None


def check_flags(values) -> None:
  """Checks the flag combinations.

  Raises:
    InputError: naming the flags.
  """
  if values.do_train:
    if bool(values.input_file) == bool(values.text_file):
      raise InputError("pass either --input_file (TFRecords) or --text_file "
                       "with --vocab_file (plain text) for training, not "
                       f"{'both' if values.input_file else 'neither'}")
    if values.text_file and not values.vocab_file:
      raise InputError("--vocab_file is required with --text_file")
    if values.num_warmup_steps > values.num_train_steps:
      raise InputError(f"--num_warmup_steps ({values.num_warmup_steps}) must "
                       f"be at most --num_train_steps "
                       f"({values.num_train_steps})")
  if values.do_eval and not values.eval_input_file:
    raise InputError("--eval_input_file is required with --do_eval")
  if not values.do_train and not values.do_eval:
    raise InputError("nothing to do: pass --do_train and/or --do_eval")


# === Input ===


def _first_record(path: str) -> Optional[bytes]:
  """The first serialized record of a TFRecord file (no TF ops), or None.

  Raises:
    InputError: the file does not start with a TFRecord.
  """
  with open(path, "rb") as f:
    header = f.read(12)
    if not header:
      return None
    if len(header) < 12:
      raise InputError(f"{path} is not a TFRecord file (truncated header)")
    (length,) = struct.unpack("<Q", header[:8])
    data = f.read(length) if length < (1 << 30) else b""
    if len(data) != length:
      raise InputError(f"{path} is not a TFRecord file or is truncated "
                       f"(first record of {length} bytes)")
  return data


def check_records(paths: Sequence[str], flag: str, seq_length: int,
                  max_predictions: int, vocab_size: int) -> None:
  """Checks the first record of each file against the flags and config.

  Cheap (one record per file, read without TF). The input pipeline checks
  every record's ids again (`records_map_fn`).

  Raises:
    InputError: a file that is not TFRecords of pretraining examples, of
      other lengths than the flags, or with ids outside the vocabulary.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from training import records  # pylint: disable=g-import-not-at-top
  for path in paths:
    data = _first_record(path)
    if data is None:
      continue  # An empty file adds nothing.
    try:
      example = tf.train.Example.FromString(data)
    except Exception:  # pylint: disable=broad-except
      raise InputError(f"--{flag}: {path} is not a TFRecord file of "
                       "tf.train.Example (its first record does not parse)"
                       ) from None
    feature = example.features.feature
    missing = [n for n in records.RECORD_TO_MODEL_NAMES if n not in feature]
    if missing:
      raise InputError(f"--{flag}: {path} is not pretraining data: its "
                       f"records lack {', '.join(missing)} (make them with "
                       "python -m training.create_pretraining_data)")
    want = {"max_seq_length": seq_length,
            "max_predictions_per_seq": max_predictions}
    for name, length_flag in _LENGTH_FLAGS.items():
      kind = feature[name].WhichOneof("kind")
      have = len(getattr(feature[name], kind).value) if kind else 0
      if have != want[length_flag]:
        raise InputError(
            f"--{length_flag}={want[length_flag]} does not match the records "
            f"of {path}: {name} has {have} values; pass "
            f"--{length_flag}={have} or regenerate the records")
    for name in ("input_ids", "masked_lm_ids"):
      ids = feature[name].int64_list.value
      if ids and max(ids) >= vocab_size:
        raise InputError(_vocab_message(path, name, max(ids), vocab_size))


def _vocab_message(where, name, value, vocab_size) -> str:
  held = f"id {value}" if value is not None else "an id"
  return (f"{where}: {name} holds {held} >= vocab_size {vocab_size} of "
          "--bert_config_file; the records were made with another "
          "vocabulary: regenerate them with the vocab.txt of the model, or "
          "pass the config of that vocabulary")


def records_map_fn(seq_length: int, max_predictions: int, vocab_size: int,
                   where: str):
  """Serialized record -> model-side features, with the ids checked."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from training import records  # pylint: disable=g-import-not-at-top

  def parse(serialized):
    features = records.parse(serialized, seq_length, max_predictions)
    checks = []
    for name, record_name in (("input_word_ids", "input_ids"),
                              ("masked_lm_ids", "masked_lm_ids")):
      checks.append(tf.debugging.assert_less(
          features[name], vocab_size, message=_vocab_message(
              where, record_name, None, vocab_size)))
    with tf.control_dependencies(checks):
      return {k: tf.identity(v) for k, v in features.items()}

  return parse


def _record_examples(paths):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  files = tf.data.Dataset.from_tensor_slices(list(paths))
  return files.interleave(tf.data.TFRecordDataset,
                          cycle_length=min(len(paths), 4),
                          num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=True)


def make_train_input_fn(values, config, paths):
  """`fn(input_context, examples_to_skip)` for the Trainer."""
  from training import loop  # pylint: disable=g-import-not-at-top
  common = dict(global_batch_size=values.train_batch_size, seed=values.seed,
                shuffle_buffer_size=values.shuffle_buffer_size)
  if values.text_file:
    from training import dynamic_masking  # pylint: disable=g-import-not-at-top

    def make_examples():
      return dynamic_masking.dynamic_masking_dataset(
          paths, values.vocab_file, values.max_seq_length,
          values.max_predictions_per_seq, do_lower_case=values.do_lower_case,
          masked_lm_prob=values.masked_lm_prob, seed=values.seed)
    map_fn = None
  else:
    make_examples = functools.partial(_record_examples, paths)
    map_fn = records_map_fn(values.max_seq_length,
                            values.max_predictions_per_seq,
                            config.vocab_size, "--input_file")

  def input_fn(input_context, examples_to_skip):
    return loop.deterministic_input_fn(
        make_examples, examples_to_skip=examples_to_skip, map_fn=map_fn,
        **common)(input_context)

  return input_fn


def make_eval_input_fn(values, config, paths, drop_remainder: bool):
  from training import loop  # pylint: disable=g-import-not-at-top
  return loop.deterministic_input_fn(
      functools.partial(_record_examples, paths),
      global_batch_size=values.eval_batch_size, seed=values.seed,
      shuffle_buffer_size=0, repeat=False, drop_remainder=drop_remainder,
      map_fn=records_map_fn(values.max_seq_length,
                            values.max_predictions_per_seq,
                            config.vocab_size, "--eval_input_file"))


# === Model ===


def update_metrics(metrics, features, outputs):
  """Masked-LM top-1 and top-5 accuracy (real predictions only), NSP's."""
  for name in ("masked_lm_accuracy", "masked_lm_top5_accuracy"):
    metrics[name].update_state(
        features["masked_lm_ids"], outputs["mlm_logits"],
        sample_weight=features["masked_lm_weights"])
  metrics["next_sentence_accuracy"].update_state(
      features["next_sentence_labels"], outputs["next_sentence"])


def make_metrics():
  """The pretraining metrics (call in the strategy's scope)."""
  import tf_keras  # pylint: disable=g-import-not-at-top
  from mobilebert_tf import losses  # pylint: disable=g-import-not-at-top
  return {"masked_lm_accuracy": losses.MaskedSparseCategoricalAccuracy(
              name="masked_lm_accuracy"),
          "masked_lm_top5_accuracy":
              tf_keras.metrics.SparseTopKCategoricalAccuracy(
                  k=5, name="masked_lm_top5_accuracy"),
          "next_sentence_accuracy": tf_keras.metrics.SparseCategoricalAccuracy(
              name="next_sentence_accuracy")}


def check_model_dir(model_dir: str, config) -> Optional[str]:
  """Refuses a model_dir of another config; returns config.json's path."""
  from mobilebert_tf.config import MobileBertConfig
  path = os.path.join(model_dir, CONFIG_FILE)
  if not os.path.exists(path):
    return None
  try:
    saved = MobileBertConfig.from_json_file(path)
  except (ValueError, OSError) as e:
    raise InputError(f"--model_dir: {path} is not a model config "
                     f"({cli.first_line(e)}); pass another --model_dir"
                     ) from None
  if saved != config:
    have, want = saved.to_dict(), config.to_dict()
    diff = [f"{k} {have.get(k)!r} vs {want.get(k)!r}"
            for k in sorted(set(have) | set(want))
            if have.get(k) != want.get(k)]
    raise InputError(
        f"--model_dir {model_dir} holds a model of another config "
        f"({path}: {'; '.join(diff[:3])} in --bert_config_file); pass the "
        "same --bert_config_file or a new --model_dir")
  return path


def operation_error(error, values) -> str:
  """A one-line message for an input-pipeline error raised in training."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  text = " ".join(str(error.message if hasattr(error, "message")
                      else error).split())
  if isinstance(error, tf.errors.DataLossError):
    return (f"a training or evaluation TFRecord file is corrupt or truncated "
            f"({text[:160]}); regenerate or copy it again")
  match = re.search(r"Key: (\w+)", text)
  if match and match.group(1) in _LENGTH_FLAGS:
    flag = _LENGTH_FLAGS[match.group(1)]
    return (f"--{flag}={values[flag].value} does not match the records: "
            f"their {match.group(1)} has another length; pass the --{flag} "
            "the records were made with")
  match = re.search(
      r"(--\w+: \S+ holds (?:an )?id.*?config of that vocabulary)", text)
  if match:
    return match.group(1)
  return text[:300]


def pause_hook() -> Optional[Callable[[int], None]]:
  step = os.environ.get(PAUSE_ENV)
  if not step:
    return None

  def pause(done):
    if done == int(step):
      print(f"Pausing after step {done} ({PAUSE_ENV}).", flush=True)
      time.sleep(3600)

  return pause


def check_batch_sizes(values, strategy) -> None:
  """Each global batch size must split evenly over the replicas.

  Raises:
    InputError: naming the flag and the replica count.
  """
  replicas = strategy.num_replicas_in_sync
  for flag in ("train_batch_size", "eval_batch_size"):
    if values[flag].value % replicas:
      raise InputError(f"--{flag}={values[flag].value} must be divisible by "
                       f"the {replicas} replicas of "
                       f"--distribution_strategy="
                       f"{values.distribution_strategy}")


def pretrain(values, log=print) -> Dict[str, float]:
  """Trains and/or evaluates (the CLI minus parsing).

  Returns:
    The evaluation results with --do_eval, else the last training loop's
    losses and metrics.

  Raises:
    InputError, ValueError, FileNotFoundError: bad flags or files (before
      anything is written).
    loop.NonFiniteLossError: the loss became NaN or infinite.
    tf.errors.OpError: from the input pipeline during training.
  """
  from mobilebert_tf import config as config_lib
  config = config_lib.load_config(values.bert_config_file)
  if values.max_seq_length > config.max_position_embeddings:
    raise InputError(f"--max_seq_length={values.max_seq_length} exceeds the "
                     f"config's max_position_embeddings "
                     f"({config.max_position_embeddings})")
  train_paths = []
  if values.do_train:
    train_paths = input_paths("input_file" if values.input_file else "text_file",
                         values.input_file or values.text_file)
    if values.vocab_file and not os.path.isfile(values.vocab_file):
      raise InputError(f"--vocab_file: {values.vocab_file} does not exist")
  eval_paths = (input_paths("eval_input_file", values.eval_input_file)
                if values.do_eval else [])
  config_path = check_model_dir(values.model_dir, config)

  # Before any TF op: multi-worker strategies configure the TF context.
  from training import distribution  # pylint: disable=g-import-not-at-top
  strategy = distribution.get_strategy(values.distribution_strategy,
                                       tpu=values.tpu)
  import tf_keras  # pylint: disable=g-import-not-at-top
  check_batch_sizes(values, strategy)
  if values.input_file and values.do_train:
    check_records(train_paths, "input_file", values.max_seq_length,
                  values.max_predictions_per_seq, config.vocab_size)
  if eval_paths:
    check_records(eval_paths, "eval_input_file", values.max_seq_length,
                  values.max_predictions_per_seq, config.vocab_size)
  if values.text_file and values.do_train:
    from mobilebert_tf import preprocessing
    preprocessing.check_vocab(values.vocab_file, config)

  from checkpoints import restore  # pylint: disable=g-import-not-at-top
  from mobilebert_tf import files  # pylint: disable=g-import-not-at-top
  from mobilebert_tf import optimization  # pylint: disable=g-import-not-at-top
  from mobilebert_tf.pretrainer import build_pretrainer
  from training import loop  # pylint: disable=g-import-not-at-top
  from training import pretraining_losses  # pylint: disable=g-import-not-at-top

  tf_keras.utils.set_random_seed(values.seed)
  previous_policy = tf_keras.mixed_precision.global_policy()
  distribution.set_mixed_precision(values.mixed_precision)
  # Op determinism (--deterministic) for this run only: in-process callers
  # keep their setting.
  with _compat.op_determinism(values.deterministic):
    try:
      with strategy.scope():
        pretrainer = build_pretrainer(config, with_nsp=True)
        optimizer = distribution.wrap_optimizer(
            optimization.create_optimizer(
                values.optimizer, learning_rate=values.learning_rate,
                num_train_steps=values.num_train_steps,
                num_warmup_steps=min(values.num_warmup_steps,
                                     values.num_train_steps),
                weight_decay_rate=values.weight_decay_rate),
            values.mixed_precision)
        trainer = loop.Trainer(
            strategy, pretrainer, optimizer,
            lambda features, outputs: pretraining_losses.pretraining_loss(
                features, outputs),
            model_dir=values.model_dir,
            train_input_fn=(make_train_input_fn(values, config, train_paths)
                            if values.do_train else None),
            global_batch_size=values.train_batch_size,
            checkpoint_items=pretrainer.checkpoint_items,
            loss_names=LOSS_NAMES, metrics=make_metrics(),
            update_metrics=update_metrics,
            save_checkpoints_steps=values.save_checkpoints_steps,
            keep_checkpoint_max=values.keep_checkpoint_max,
            steps_per_loop=values.steps_per_loop, log=log,
            on_loop_end=pause_hook())
      latest = trainer.latest_checkpoint
      if latest:
        restore.check_tf2_fits(pretrainer, latest)  # ValueError names it.
      elif values.init_checkpoint:
        fmt = restore.load_checkpoint(pretrainer, config,
                                      values.init_checkpoint,
                                      flag="--init_checkpoint")
        log(f"Initialized from {values.init_checkpoint} ({fmt}).")
      elif not values.do_train:
        raise InputError(f"--model_dir {values.model_dir} has no checkpoint "
                         "to evaluate; train first or pass --init_checkpoint")
      if config_path is None and trainer.is_chief:
        files.write_text(os.path.join(values.model_dir, CONFIG_FILE),
                         config.to_json_string())
      log(f"{distribution.replica_note(strategy, values.train_batch_size)}; "
          f"policy {values.mixed_precision}; model_dir {values.model_dir}.")
      results = {}
      if values.do_train:
        results = trainer.train(values.num_train_steps)
      else:
        trainer.restore(model_only=True)
      if values.do_eval:
        results = trainer.evaluate(
            make_eval_input_fn(values, config, eval_paths,
                               values.distribution_strategy == "tpu"),
            max_steps=values.max_eval_steps)
        if trainer.is_chief:
          files.write_text(os.path.join(values.model_dir, EVAL_RESULTS_FILE),
                           json.dumps(results, indent=2, sort_keys=True) + "\n",
                           overwrite=True)
        log("Evaluation: " + json.dumps(results, sort_keys=True))
      return results
    finally:
      tf_keras.mixed_precision.set_global_policy(previous_policy)


def run_main(program: str, argv: Sequence[str], define_flags, usage,
             required: Sequence[str], check, run, log=None) -> int:
  """A trainer CLI's `main`: parse, check, run; expected failures exit 2.

  Args:
    program: the program name for messages ("python -m training.pretrain").
    argv: the command line (argv[0]: the program name).
    define_flags: `fn() -> flags.FlagValues`, fresh per call.
    usage: `fn(values) -> str`, the --help text.
    required: the flags that must be given.
    check: `fn(values)`, raising `InputError` for a bad combination.
    run: `fn(values, log)`, the work.
    log: `fn(line)` for the progress lines; default: print and flush.

  Returns:
    The exit code: 0, or 2 with one line on stderr for bad flags or input,
    an input-pipeline error, or a non-finite loss.
  """
  argv = list(argv)
  if argv and argv[0].startswith("-"):
    argv = [program] + argv
  if cli.wants_help(argv):
    print(usage(define_flags()))
    return 0
  values = define_flags()
  try:
    cli.parse(values, argv, required=required)
    check(values)
  except (cli.UsageError, InputError) as e:
    return cli.error(program, str(e))
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from training import distribution  # pylint: disable=g-import-not-at-top
  from training import loop  # pylint: disable=g-import-not-at-top
  try:
    run(values, log=log or (lambda line: print(line, flush=True)))
  except loop.NonFiniteLossError as e:
    return cli.error(program, str(e))
  except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
    return cli.error(program, operation_error(e, values))
  except (InputError, distribution.DistributionError, OSError,
          ValueError) as e:
    return cli.error(program, cli.first_line(e, limit=None))
  return 0


def main(argv: Sequence[str]) -> int:
  """Runs the CLI on `argv` (argv[0]: the program name); returns exit code."""
  return run_main(_PROGRAM, argv, _define_flags, _usage,
                  ("bert_config_file", "model_dir"), check_flags, pretrain)


if __name__ == "__main__":
  sys.exit(main(sys.argv))
