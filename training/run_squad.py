r"""Fine-tunes and runs MobileBERT on SQuAD v1.1 / v2.0 (extractive QA).

  python -m training.run_squad \
    --bert_config_file=bert_config.json --vocab_file=vocab.txt \
    --init_checkpoint=CKPT --do_train --train_file=train-v1.1.json \
    --do_predict --predict_file=dev-v1.1.json --output_dir=OUT \
    [--max_seq_length=384 --doc_stride=128 --max_query_length=64 \
     --train_batch_size=32 --learning_rate=5e-5 --num_train_epochs=3 \
     --version_2_with_negative --null_score_diff_threshold=0.0]

The flags of google-research `run_squad.py`. `--bert_config_file` also takes a
preset name (`mobilebert_tf.config.PRESETS`); `--init_checkpoint` any
checkpoint the library reads (a converted or original TF1 checkpoint, a
`training.pretrain` or `training.distill` model_dir); or `--hub_module`, an
exported encoder directory (`python -m export.to_savedmodel`), instead of
both.

Features (`mobilebert_tf.qa`, `training.squad_data`): the original's windows
over long contexts (`--doc_stride` pieces apart) with its max-context rule,
answer-span labels and n-best prediction over all windows of a question;
answers are cut from the context by character offsets (exact substrings).

Training: `MobileBertForQuestionAnswering` with the mean of the start and end
cross-entropies, under `--distribution_strategy` in `training.loop.Trainer`:
checkpoints in `--output_dir` every `--save_checkpoints_steps` steps; a
killed run, started again with the same flags, resumes where it stopped.

Prediction writes to `--output_dir`: `predictions.json`,
`nbest_predictions.json` (and `null_odds.json` with
`--version_2_with_negative`), in the original's formats; when the file has
answers, `eval_results.json` with the official SQuAD evaluation's EM and F1.

`--export_dir`: a serving SavedModel (`export.qa_savedmodel`) whose
`serving_default` takes `question` and `context` strings and returns
`answer`, `start_char`, `end_char` and `score`, windows and answer rules
inside, checked against the in-memory pipeline before it is renamed into
place. Load it after `import tensorflow_text`.

`--tflite_file`: a TFLite model of one window (`export.qa_tflite`: the three
int32 inputs `[1, --max_seq_length]` -> `start_logits`, `end_logits`); the
app tokenizes and slides the windows itself (as `mobilebert_tf.qa`).
`--tflite_quantization` none (float32), dynamic (int8 weights) or int8 (full
integer: activations calibrated on the first `--num_calibration_examples`
training windows, or the predict windows without `--do_train`; after
`--quantization_aware`, the ranges it learnt). Before it is written, LiteRT
answers the questions: with `--do_predict` on a file with answers, every one
of them, scored as the in-memory model (`tflite_eval_results.json`: both EM
and F1); float32 must give the in-memory answer to each question, a
quantized model may lose at most `--tflite_max_f1_drop` F1 points (default
1). A quantized model needs those answers; float32 without them is checked
on the first 16 questions.

Exit codes: 0 done; 2 bad flags or input (one line on stderr); 1 a failed
export check.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if __name__ == "__main__":  # A command line: see `mobilebert_tf.cli`.
  os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import dataclasses
import json
import sys
import time
from typing import Dict, NamedTuple, Optional, Sequence

from absl import flags

from training import pretrain

_PROGRAM = "python -m training.run_squad"
EVAL_RESULTS_FILE = "eval_results.json"
TFLITE_EVAL_RESULTS_FILE = "tflite_eval_results.json"
InputError = pretrain.InputError


def _define_flags() -> flags.FlagValues:
  values = flags.FlagValues()
  define = dict(flag_values=values)
  flags.DEFINE_string("bert_config_file", None, "The model's bert_config.json "
                      "or a preset name (with --init_checkpoint).", **define)
  flags.DEFINE_string("init_checkpoint", None, "Initial encoder weights: any "
                      "checkpoint the library reads.", **define)
  flags.DEFINE_string("hub_module", None, "Instead of --bert_config_file and "
                      "--init_checkpoint: an exported encoder SavedModel.",
                      **define)
  flags.DEFINE_string("vocab_file", None, "The WordPiece vocabulary.",
                      **define)
  flags.DEFINE_boolean("do_lower_case", True, "Lower-case and strip accents "
                       "(uncased models).", **define)
  flags.DEFINE_boolean("do_train", False, "Fine-tune on --train_file.",
                       **define)
  flags.DEFINE_string("train_file", None, "SQuAD JSON for training.", **define)
  flags.DEFINE_boolean("do_predict", False, "Answer --predict_file.",
                       **define)
  flags.DEFINE_string("predict_file", None, "SQuAD JSON to answer (and "
                      "evaluate, if it has answers).", **define)
  flags.DEFINE_string("output_dir", None, "Checkpoints, summaries, "
                      "predictions and eval_results.json.", **define)
  flags.DEFINE_integer("max_seq_length", 384, "Window length in word pieces "
                       "(question and context).", lower_bound=8, **define)
  flags.DEFINE_integer("doc_stride", 128, "Word pieces between the starts of "
                       "a context's windows.", lower_bound=1, **define)
  flags.DEFINE_integer("max_query_length", 64, "Question word pieces kept.",
                       lower_bound=1, **define)
  flags.DEFINE_integer("train_batch_size", 32, "Global training batch size.",
                       lower_bound=1, **define)
  flags.DEFINE_integer("predict_batch_size", 8, "Prediction batch size.",
                       lower_bound=1, **define)
  flags.DEFINE_float("learning_rate", 5e-5, "Peak learning rate.",
                     lower_bound=0.0, **define)
  flags.DEFINE_float("num_train_epochs", 3.0, "Training epochs (may be "
                     "fractional).", lower_bound=0.0, **define)
  flags.DEFINE_float("warmup_proportion", 0.1, "Fraction of the steps of "
                     "linear warm-up.", lower_bound=0.0, upper_bound=1.0,
                     **define)
  flags.DEFINE_enum("optimizer", "adamw", ["adamw", "lamb"], "Optimizer.",
                    **define)
  flags.DEFINE_float("weight_decay_rate", 0.01, "Decoupled weight decay "
                     "(not for biases and normalization).", lower_bound=0.0,
                     **define)
  flags.DEFINE_integer("n_best_size", 20, "Candidates kept per question "
                       "(nbest_predictions.json).", lower_bound=1, **define)
  flags.DEFINE_integer("max_answer_length", 30, "Longest answer, in word "
                       "pieces.", lower_bound=1, **define)
  flags.DEFINE_boolean("version_2_with_negative", False, "SQuAD 2.0: "
                       "questions may have no answer.", **define)
  flags.DEFINE_float("null_score_diff_threshold", 0.0, "SQuAD 2.0: answer "
                     "nothing when null score - best span score exceeds "
                     "this.", **define)
  flags.DEFINE_string("export_dir", None, "Write a serving SavedModel here: "
                      "question and context strings -> answer, with the "
                      "windows inside.", **define)
  flags.DEFINE_string("tflite_file", None, "Write a TFLite QA model here: "
                      "one window of int32 ids -> start/end logits.",
                      **define)
  flags.DEFINE_enum("tflite_quantization", "none",
                    ["none", "dynamic", "int8"], "With --tflite_file: "
                    "float32, dynamic-range int8 weights, or full integer "
                    "(activations calibrated on --num_calibration_examples "
                    "windows; after --quantization_aware, the learnt "
                    "ranges). Quantized: needs --do_predict on a file with "
                    "answers.", **define)
  flags.DEFINE_float("tflite_max_f1_drop", 1.0, "With a quantized "
                     "--tflite_file: the most F1 (points, on --predict_file) "
                     "it may lose against the in-memory model; float32 must "
                     "give the same answers.", **define)
  flags.DEFINE_boolean("overwrite", False, "Replace an existing --export_dir "
                       "or --tflite_file.", **define)
  flags.DEFINE_boolean("quantization_aware", False, "With "
                       "--bert_config_file: quantization-aware training "
                       "(8-bit fake quantization as the original's QAT; "
                       "relu becomes relu6, the mask rule "
                       "quantization_friendly): see docs/tflite.md.",
                       **define)
  flags.DEFINE_integer("num_calibration_examples", 100, "Windows whose "
                       "activations set the ranges: with "
                       "--quantization_aware the fake quantization's before "
                       "the first step (training windows), and "
                       "--tflite_quantization=int8's (training windows, or "
                       "the predict windows without --do_train).",
                       lower_bound=1, **define)
  flags.DEFINE_integer("seed", 12345, "Seed of the head's initialization "
                       "and the shuffle.", **define)
  return pretrain.define_loop_flags(values)


def _usage(values: flags.FlagValues) -> str:
  return (f"Usage: {_PROGRAM} (--bert_config_file=JSON --init_checkpoint=CKPT "
          "| --hub_module=DIR) --vocab_file=VOCAB --output_dir=DIR "
          "[--do_train --train_file=JSON] [--do_predict --predict_file=JSON] "
          "[--version_2_with_negative ...]\n\nFine-tunes and runs "
          "MobileBERT on SQuAD v1.1 / v2.0.\n\nFlags:\n" + values.get_help())


def check_flags(values) -> None:
  """Checks the flag combinations.

  Raises:
    InputError: naming the flags.
  """
  if not values.do_train and not values.do_predict:
    raise InputError("nothing to do: pass --do_train and/or --do_predict")
  for mode, file_flag in (("do_train", "train_file"),
                          ("do_predict", "predict_file")):
    if values[mode].value and not values[file_flag].value:
      raise InputError(f"--{file_flag} is required with --{mode}")
  if bool(values.hub_module) == bool(values.bert_config_file):
    raise InputError("pass either --bert_config_file (with --init_checkpoint) "
                     "or --hub_module, not "
                     f"{'both' if values.hub_module else 'neither'}")
  if values.hub_module and values.tflite_file:
    raise InputError("--tflite_file needs --bert_config_file: the model is "
                     "rebuilt from its config for TFLite, which a "
                     "--hub_module has not")
  if values.tflite_quantization != "none" and not values.tflite_file:
    raise InputError("--tflite_quantization: only with --tflite_file")
  if values.tflite_file and values.tflite_quantization != "none" and (
      not values.do_predict):
    raise InputError(f"--tflite_quantization={values.tflite_quantization} "
                     "is checked by the F1 it keeps: pass --do_predict with "
                     "a --predict_file that has answers")
  if values.hub_module and values.quantization_aware:
    raise InputError("--quantization_aware needs --bert_config_file: a "
                     "--hub_module's graph cannot take fake-quantization "
                     "ops")
  if values.hub_module and values.init_checkpoint:
    raise InputError("--init_checkpoint is for --bert_config_file; "
                     "--hub_module holds its own weights")
  if values.distribution_strategy == "multi_worker_mirrored":
    given = [f"--{f}" for f in ("do_predict", "export_dir", "tflite_file")
             if values[f].value]
    if given:
      raise InputError(
          f"{', '.join(given)} with --distribution_strategy="
          "multi_worker_mirrored: every worker would write the outputs; "
          "train on the workers, then predict and export in one process "
          "with the same --output_dir")
  room = values.max_seq_length - values.max_query_length - 3
  if room < 1:
    raise InputError(f"--max_seq_length={values.max_seq_length} leaves no "
                     f"room for the context after --max_query_length="
                     f"{values.max_query_length} and [CLS] [SEP] [SEP]")
  if values.doc_stride >= room:
    raise InputError(
        f"--doc_stride={values.doc_stride} must be smaller than the "
        f"{room} context pieces of a window (--max_seq_length - "
        "--max_query_length - 3), or windows would not overlap and answers "
        "across their boundaries would be lost")


def _read(values, flag: str, is_training: bool, log):
  """The examples of --flag's SQuAD file, and the file's `data` list."""
  from training import squad_data  # pylint: disable=g-import-not-at-top
  path = values[flag].value
  if not os.path.isfile(path):
    raise InputError(f"--{flag}: {path} does not exist")
  try:
    dataset = squad_data.load_dataset(path)
    examples, skipped = squad_data.read_examples(
        path, is_training, values.version_2_with_negative, dataset=dataset)
  except squad_data.SquadError as e:
    raise InputError(f"--{flag}: {e}") from None
  if skipped:
    log(f"Warning: skipped {skipped} training answers of {path} whose text "
        "is not at their answer_start.")
  if not examples:
    raise InputError(f"--{flag}: {path} has no questions")
  return examples, dataset


def _encoder_and_config(values):
  """The encoder (in the strategy's scope) and its config, or None."""
  # pylint: disable=g-import-not-at-top
  from mobilebert_tf import config as config_lib
  # pylint: enable=g-import-not-at-top
  if values.hub_module:
    import tensorflow_hub as hub  # pylint: disable=g-import-not-at-top
    from export import encoder_savedmodel  # pylint: disable=g-import-not-at-top
    try:
      config = encoder_savedmodel.read_config(values.hub_module)
    except ValueError:
      config = None  # Another exporter's encoder: nothing to check.
    return hub.KerasLayer(values.hub_module, trainable=True,
                          name="encoder"), None, config
  from mobilebert_tf.pretrainer import build_pretrainer  # pylint: disable=g-import-not-at-top
  config = config_lib.load_config(values.bert_config_file)
  if values.quantization_aware:
    try:
      config = config.for_quantization_aware_training()
    except ValueError as e:
      raise InputError(f"--quantization_aware: {e}") from None
  pretrainer = build_pretrainer(config)
  return pretrainer.encoder_network, pretrainer, config


def span_loss_fn(global_batch_size: int):
  """Per-replica loss: the replica's share of the global-batch mean of
  `(CE(start) + CE(end)) / 2`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  def loss_fn(features, outputs):
    terms = [tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=features[label], logits=tf.cast(outputs[logits], tf.float32))
             for label, logits in (("start_positions", "start_logits"),
                                   ("end_positions", "end_logits"))]
    return {"loss": tf.reduce_sum((terms[0] + terms[1]) / 2.0) /
                    global_batch_size}

  return loss_fn


def _inputs_only(model):
  """`model` called on just the encoder inputs of a training batch (which
  also holds the labels; a functional model warns about extra keys)."""
  import tf_keras  # pylint: disable=g-import-not-at-top
  from mobilebert_tf import heads  # pylint: disable=g-import-not-at-top

  class InputsOnly(tf_keras.Model):

    def __init__(self, inner):
      super().__init__(name="inputs_only")
      self.inner = inner

    def call(self, features, training=None):
      return self.inner({k: features[k] for k in heads.ENCODER_INPUTS},
                        training=training)

  return InputsOnly(model)


def _write_json(values, name: str, obj) -> str:
  from mobilebert_tf import files  # pylint: disable=g-import-not-at-top
  return files.write_text(os.path.join(values.output_dir, name),
                          json.dumps(obj, indent=2, ensure_ascii=False) + "\n",
                          overwrite=True)


def run_squad(values, log=print) -> Dict[str, float]:
  """Trains and/or predicts (the CLI minus parsing).

  Returns:
    The evaluation results of --do_predict on a file with answers, else
    the last training loop's loss (empty when nothing was left to do).

  Raises:
    InputError, ValueError, OSError: bad flags or files (before anything is
      written).
    loop.NonFiniteLossError: the loss became NaN or infinite.
  """
  start_time = time.time()
  train_examples, _ = (_read(values, "train_file", True, log)
                       if values.do_train else ([], None))
  predict_examples, predict_dataset = (
      _read(values, "predict_file", False, log)
      if values.do_predict else ([], None))
  if values.tflite_file and values.tflite_quantization != "none" and (
      not _scorable(values, predict_dataset)):
    raise InputError(f"--tflite_quantization={values.tflite_quantization} "
                     f"is checked by the F1 it keeps, and --predict_file "
                     f"{values.predict_file} has no answers to score")
  if not os.path.isfile(values.vocab_file):
    raise InputError(f"--vocab_file: {values.vocab_file} does not exist")
  from mobilebert_tf import files  # pylint: disable=g-import-not-at-top
  for flag in ("export_dir", "tflite_file"):
    if values[flag].value:
      try:
        files.check_target(values[flag].value, values.overwrite)
      except (FileExistsError, NotADirectoryError) as e:
        raise InputError(f"--{flag}: {e}") from None

  # Before any TF op: multi-worker strategies configure the TF context.
  from training import distribution  # pylint: disable=g-import-not-at-top
  strategy = distribution.get_strategy(values.distribution_strategy,
                                       tpu=values.tpu)
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  import tf_keras
  from checkpoints import restore
  from mobilebert_tf import _compat
  from mobilebert_tf import heads
  from mobilebert_tf import optimization
  from mobilebert_tf import preprocessing
  from mobilebert_tf import qa
  from training import loop
  from training import squad_data
  # pylint: enable=g-import-not-at-top
  for flag in ("train_batch_size", "predict_batch_size"):
    if values[flag].value % strategy.num_replicas_in_sync:
      raise InputError(f"--{flag}={values[flag].value} must be divisible by "
                       f"the {strategy.num_replicas_in_sync} replicas")
  preprocessor = preprocessing.build_preprocessor(values.vocab_file,
                                                  values.do_lower_case)
  window = dict(seq_length=values.max_seq_length,
                max_query_length=values.max_query_length,
                doc_stride=values.doc_stride)

  tf_keras.utils.set_random_seed(values.seed)
  previous_policy = tf_keras.mixed_precision.global_policy()
  distribution.set_mixed_precision(values.mixed_precision)
  # Op determinism (--deterministic) for this run only.
  with _compat.op_determinism(values.deterministic):
    try:
      train_inputs, num_train_steps = None, 1
      if values.do_train:
        train_inputs, features = qa.prepare_qa_inputs(
            preprocessor, [e.question for e in train_examples],
            [e.context for e in train_examples], **window)
        starts, ends = squad_data.answer_positions(preprocessor,
                                                   train_examples, features)
        train_inputs.update(start_positions=starts, end_positions=ends)
        num_train_steps = max(1, int(len(features) * values.num_train_epochs /
                                     values.train_batch_size))
        log(f"Training data: {len(train_examples)} questions -> "
            f"{len(features)} windows ({int((starts > 0).sum())} holding "
            f"their answer); {num_train_steps} steps of "
            f"{values.train_batch_size}.")
      with strategy.scope():
        encoder, pretrainer, config = _encoder_and_config(values)
        if config is not None and (values.max_seq_length >
                                   config.max_position_embeddings):
          raise InputError(f"--max_seq_length={values.max_seq_length} exceeds "
                           "the encoder's max_position_embeddings "
                           f"({config.max_position_embeddings})")
        if config is not None:
          preprocessing.check_vocab(values.vocab_file, config)
        model = heads.MobileBertForQuestionAnswering(encoder,
                                                     name="squad_model")
        optimizer = distribution.wrap_optimizer(
            optimization.create_optimizer(
                values.optimizer, learning_rate=values.learning_rate,
                num_train_steps=num_train_steps,
                num_warmup_steps=int(num_train_steps *
                                     values.warmup_proportion),
                weight_decay_rate=values.weight_decay_rate),
            values.mixed_precision)

        def train_input_fn(input_context, examples_to_skip):
          return loop.deterministic_input_fn(
              lambda: tf.data.Dataset.from_tensor_slices(train_inputs),
              global_batch_size=values.train_batch_size, seed=values.seed,
              examples_to_skip=examples_to_skip,
              shuffle_buffer_size=len(train_inputs["start_positions"]))(
                  input_context)

        trainer = loop.Trainer(
            strategy, _inputs_only(model), optimizer,
            span_loss_fn(values.train_batch_size),
            model_dir=values.output_dir,
            train_input_fn=train_input_fn if values.do_train else None,
            global_batch_size=values.train_batch_size,
            checkpoint_items={"model": model},
            save_checkpoints_steps=values.save_checkpoints_steps,
            keep_checkpoint_max=values.keep_checkpoint_max,
            steps_per_loop=values.steps_per_loop, log=log,
            on_loop_end=pretrain.pause_hook())
      latest = trainer.latest_checkpoint
      if latest is None and not values.do_train:
        raise InputError(f"--output_dir {values.output_dir} has no fine-tuned "
                         "checkpoint to predict with; pass --do_train")
      if latest is None and values.init_checkpoint:
        fmt = restore.load_checkpoint(pretrainer, config,
                                      values.init_checkpoint,
                                      flag="--init_checkpoint")
        log(f"Initialized the encoder from {values.init_checkpoint} ({fmt}).")
      elif latest is None and pretrainer is not None:
        log("Warning: no --init_checkpoint: the encoder starts from random "
            "weights.")
      if (latest is None and values.do_train and config is not None and
          config.use_quantized_training):
        _calibrate_quantization_ranges(values, model, train_inputs, log)
      log(f"{distribution.replica_note(strategy, values.train_batch_size)}; "
          f"policy {values.mixed_precision}; output_dir {values.output_dir}.")
      results, prediction = {}, None
      if values.do_train:
        results = trainer.train(num_train_steps)
      else:
        trainer.restore(model_only=True)
      if values.do_predict:
        prediction = _predict(values, model, preprocessor, predict_examples,
                              predict_dataset, window, log)
        results = prediction.scores or {}
      if values.export_dir:
        _export(values, model, preprocessor, predict_examples or train_examples,
                window, log)
      if values.tflite_file:
        _export_tflite(values, model, config, preprocessor,
                       predict_examples or train_examples, window, log,
                       prediction, train_inputs)
      log(f"Done ({time.time() - start_time:.0f} s).")
      return results
    finally:
      tf_keras.mixed_precision.set_global_policy(previous_policy)


def _calibrate_quantization_ranges(values, model, train_inputs, log):
  """QAT, before the first step: the activation ranges from the first
  training windows (the same each time: a resumed run calibrates alike)."""
  # pylint: disable=g-import-not-at-top
  from mobilebert_tf import heads
  from mobilebert_tf.layers import quantization
  # pylint: enable=g-import-not-at-top
  count = min(values.num_calibration_examples,
              len(train_inputs["input_word_ids"]))
  size = values.train_batch_size
  calibrated = quantization.calibrate_ranges(
      model, [{k: train_inputs[k][i:i + size] for k in heads.ENCODER_INPUTS}
              for i in range(0, count, size)])
  log(f"Calibrated {calibrated} quantization ranges on {count} training "
      "windows.")


def _scorable(values, dataset) -> bool:
  """Whether predictions of a SQuAD `data` list can be scored: it has
  answers (SQuAD 2.0: every question counts, unanswerable ones too)."""
  return values.version_2_with_negative or any(
      q.get("answers") for a in dataset or ()
      for p in a["paragraphs"] for q in p["qas"])


class _Prediction(NamedTuple):
  """The in-memory model's answers to --predict_file (what the TFLite model
  is scored against): the windows, their logits, the answers and, for a file
  with answers, the evaluation (else None)."""
  examples: list
  dataset: list
  inputs: Dict[str, object]
  features: object
  logits: Dict[str, object]
  answers: list
  scores: Optional[Dict[str, float]]


def _answers(values, logits, features):
  """The best answer of each question from its windows' logits."""
  from mobilebert_tf import qa  # pylint: disable=g-import-not-at-top
  return qa.extract_answers(
      logits["start_logits"], logits["end_logits"], features,
      n_best_size=values.n_best_size,
      max_answer_length=values.max_answer_length,
      null_score_diff_threshold=(values.null_score_diff_threshold
                                 if values.version_2_with_negative else None))


def _score(values, examples, dataset, answers):
  """The prediction files' contents, and their official evaluation (None
  for a file without answers)."""
  from training import squad_data  # pylint: disable=g-import-not-at-top
  written = squad_data.prediction_files(examples, answers,
                                        values.version_2_with_negative)
  if not _scorable(values, dataset):
    return written, None
  return written, squad_data.evaluate(dataset, written["predictions.json"],
                                      written.get("null_odds.json"))


def _predict(values, model, preprocessor, examples, dataset, window,
             log) -> _Prediction:
  """Answers the examples; writes the prediction (and evaluation) files.

  `dataset` is the predict file's `data` list, scored when it has answers.
  """
  from mobilebert_tf import qa  # pylint: disable=g-import-not-at-top
  inputs, features = qa.prepare_qa_inputs(
      preprocessor, [e.question for e in examples],
      [e.context for e in examples], **window)
  log(f"Predicting: {len(examples)} questions -> {len(features)} windows.")
  outputs = model.predict(inputs, batch_size=values.predict_batch_size,
                          verbose=2)
  logits = {k: outputs[k] for k in ("start_logits", "end_logits")}
  answers = _answers(values, logits, features)
  written, scores = _score(values, examples, dataset, answers)
  for name, obj in written.items():
    log(f"Wrote {_write_json(values, name, obj)}.")
  if scores is not None:
    _write_json(values, EVAL_RESULTS_FILE, scores)
    log("Evaluation: " + json.dumps(scores, sort_keys=True))
  return _Prediction(examples, dataset, inputs, features, logits, answers,
                     scores)


def _export(values, model, preprocessor, examples, window, log) -> None:
  """Writes the serving SavedModel, checked on up to 16 examples."""
  from export import qa_savedmodel  # pylint: disable=g-import-not-at-top
  module = qa_savedmodel.QAServingModule(
      model, values.vocab_file, values.do_lower_case,
      n_best_size=values.n_best_size,
      max_answer_length=values.max_answer_length,
      null_score_diff_threshold=(values.null_score_diff_threshold
                                 if values.version_2_with_negative else None),
      **window)
  check = examples[:16]
  path = qa_savedmodel.export_qa(
      module, preprocessor, values.export_dir, [e.question for e in check],
      [e.context for e in check], overwrite=values.overwrite)
  log(f"Exported {path} (serving_default: question, context -> answer, "
      f"start_char, end_char, score); it answers {len(check)} questions as "
      "the in-memory model.")


def _export_tflite(values, model, config, preprocessor, examples, window,
                   log, prediction, train_inputs) -> None:
  """Converts, checks (on --predict_file's answers when it has them, else
  the first 16 questions' in-memory answers), then writes.

  Raises:
    RuntimeError: the converter fails, or the model fails its bar (nothing
      written).
  """
  # pylint: disable=g-import-not-at-top
  from export import qa_tflite
  from export import tflite_convert
  from mobilebert_tf import files
  from mobilebert_tf import heads
  # pylint: enable=g-import-not-at-top
  quantization = values.tflite_quantization
  batches = None
  if quantization == "int8":
    source = train_inputs if train_inputs is not None else prediction.inputs
    batches = tflite_convert.split_rows(
        {k: source[k][:values.num_calibration_examples]
         for k in heads.ENCODER_INPUTS}, 1)
  try:
    flatbuffer = qa_tflite.convert_qa(model, config, values.max_seq_length,
                                      quantization, batches)
  except Exception as e:  # The converter raises bare RuntimeErrors.
    raise tflite_convert.conversion_failure(quantization, e) from e
  if prediction is not None and prediction.scores is not None:
    report = _score_tflite(values, flatbuffer, prediction)
    _write_json(values, TFLITE_EVAL_RESULTS_FILE,
                dict(quantization=quantization, **dataclasses.asdict(report)))
    qa_tflite.check_qa(report, quantization, values.tflite_max_f1_drop)
    checked = f"on --predict_file: {report.format()}"
  else:  # float32 only (check_flags): the in-memory answers.
    check = examples[:16]
    report = qa_tflite.verify_qa(
        flatbuffer, model, preprocessor, [e.question for e in check],
        [e.context for e in check], n_best_size=values.n_best_size,
        max_answer_length=values.max_answer_length,
        null_score_diff_threshold=(values.null_score_diff_threshold
                                   if values.version_2_with_negative
                                   else None),
        **window)
    checked = (f"LiteRT answers {report['questions']} questions "
               f"({report['windows']} windows) as the in-memory model, max "
               f"|logit difference| {report['max_abs_logit_diff']:.2g}")
  path = files.write_bytes(values.tflite_file, flatbuffer,
                           overwrite=values.overwrite)
  log(f"Wrote {path} ({len(flatbuffer) / 2**20:.1f} MiB, {quantization}; "
      f"serving_default: input_word_ids, input_mask, input_type_ids int32 "
      f"[1, {values.max_seq_length}] -> start_logits, end_logits); "
      f"{checked}.")


def _score_tflite(values, flatbuffer: bytes, prediction: _Prediction):
  """The TFLite model on every window of --predict_file, scored as the
  in-memory model was (`qa_tflite.QAReport`)."""
  from export import qa_tflite  # pylint: disable=g-import-not-at-top
  logits = qa_tflite.run_qa(flatbuffer, prediction.inputs)
  answers = _answers(values, logits, prediction.features)
  _, scores = _score(values, prediction.examples, prediction.dataset, answers)
  same = [(a.text, a.start_char) == (b.text, b.start_char)
          for a, b in zip(answers, prediction.answers)]
  return qa_tflite.QAReport(
      questions=len(answers), windows=len(prediction.features),
      exact_match=scores["exact_match"], f1=scores["f1"],
      reference_exact_match=prediction.scores["exact_match"],
      reference_f1=prediction.scores["f1"],
      same_answer=sum(same) / len(same),
      max_abs_logit_diff=qa_tflite.max_logit_difference(
          logits, prediction.logits, prediction.features))


def main(argv: Sequence[str], log=None) -> int:
  """Runs the CLI on `argv` (argv[0]: the program name); returns exit code.

  `log` takes the progress lines (default: printed).
  """
  from mobilebert_tf import cli  # pylint: disable=g-import-not-at-top
  try:
    return pretrain.run_main(_PROGRAM, argv, _define_flags, _usage,
                             ("vocab_file", "output_dir"), check_flags,
                             run_squad, log=log)
  except RuntimeError as e:  # The export check failed: nothing written.
    return cli.error(_PROGRAM, cli.first_line(e, limit=None), code=1)


if __name__ == "__main__":
  sys.exit(main(sys.argv))
