"""The teacher-student model of distillation: a frozen teacher, a student.

What google-research `mobilebert/run_pretraining.py` builds in its
`model_fn` when a teacher config is given, as one Keras model for the
project's training loop (`training.loop.Trainer`):

* both models are `MobileBertPretrainer`s (`build_distiller`), with the
  attention logits (the masked pre-softmax scores, the original's
  `get_all_attention_maps()`) only when attention is transferred;
* the teacher is frozen: not trainable, never dropped out, every tensor it
  gives under `tf.stop_gradient`; its masked-LM logits are computed on
  `temperature * sequence_output`, as the original's `get_logits` call
  does (the "temperature" scales the teacher's hidden states before its
  masked-LM head, not its logits);
* the student also runs without dropout: the original builds it with
  `is_training=False` whenever a teacher is present;
* before training the student starts from the teacher's non-encoder weights
  (`copy_non_encoder_weights`): what the original's `init_from_teacher`
  with `init_embedding=True` does, every teacher checkpoint variable
  outside `bert/encoder/` of the same name in the student (embeddings,
  pooler, `cls/predictions`, `cls/seq_relationship`);
* only the student is checkpointed (`Distiller.checkpoint_items`), so the
  result of a distillation is an ordinary pretrainer checkpoint.

Student block `i` learns from teacher block `transfer_layers[i]`
(`parse_transfer_layers`, the `--transfer_teacher_layers` flag); the
original has no such mapping (it zips the two lists of blocks, so the
student and the teacher must be equally deep there).

Example:

>>> distiller = build_distiller(teacher_config, student_config,
...                             transfer_layers=(1, 3))
>>> load_teacher_checkpoint(distiller.teacher, teacher_config, "teacher/")
>>> copy_non_encoder_weights(distiller.teacher, distiller.student)
>>> outputs = distiller(features)
>>> outputs["teacher"]["mlm_logits"], outputs["student"]["mlm_logits"]
"""

import math
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple

from absl import logging
import tensorflow as tf
import tf_keras

from checkpoints import name_map
from checkpoints import restore
from mobilebert_tf.config import MobileBertConfig
from mobilebert_tf.encoder import ENCODER_INPUTS
from mobilebert_tf.pretrainer import MobileBertPretrainer
from mobilebert_tf.pretrainer import build_pretrainer

TRANSFER_LAYERS_FLAG = "--transfer_teacher_layers"
TEACHER_CHECKPOINT_FLAG = "--teacher_checkpoint"

# The original's rule for what the student takes from the teacher: every
# checkpoint variable outside this scope (`get_assignment_map_from_checkpoint`
# with `init_embedding=True`).
_ENCODER_SCOPE = "bert/encoder/"

# Config fields that fix the shapes of the copied non-encoder weights and of
# the block outputs the hidden-state losses compare, with why, for messages.
_SHARED_FIELDS = (
    ("vocab_size", "the embedding table and the masked-LM head are copied"),
    ("embedding_size", "the embedding table is copied"),
    ("trigram_input", "the embedding transformation is copied"),
    ("hidden_size", "block outputs are compared and the heads are copied"),
    ("type_vocab_size", "the token-type embeddings are copied"),
    ("max_position_embeddings", "the position embeddings are copied"),
)
# Names shown in a log line before "(and N more)".
_MAX_NAMES = 8


# === Which teacher block each student block learns from ===


def evenly_spaced_transfer_layers(num_student_blocks: int,
                                  num_teacher_blocks: int) -> Tuple[int, ...]:
  """Teacher block indices spread evenly over the student's blocks.

  Student block `i` gets the last teacher block of the `i`-th of
  `num_student_blocks` equal groups, so the last blocks always match:
  4 teacher blocks, 2 student blocks -> (1, 3).

  Args:
    num_student_blocks: int. Blocks of the student.
    num_teacher_blocks: int. Blocks of the teacher.

  Returns:
    A tuple of `num_student_blocks` ints in `[0, num_teacher_blocks)`.
  """
  _check_block_count("num_student_blocks", num_student_blocks)
  _check_block_count("num_teacher_blocks", num_teacher_blocks)
  return tuple(-(-(i + 1) * num_teacher_blocks // num_student_blocks) - 1
               for i in range(num_student_blocks))


def _check_block_count(name, value):
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise ValueError(f"`{name}` must be a positive integer. Received: "
                     f"{name}={value!r}")


def _layers_hint(num_student_blocks, num_teacher_blocks):
  suggestion = ",".join(map(str, evenly_spaced_transfer_layers(
      num_student_blocks, num_teacher_blocks)))
  return (f"pass one teacher block index in [0, {num_teacher_blocks}) per "
          f"student block ({num_student_blocks}), e.g. evenly spaced: "
          f"{TRANSFER_LAYERS_FLAG}={suggestion}")


def _check_transfer_layers(layers, num_student_blocks, num_teacher_blocks,
                           received):
  """Raises ValueError unless `layers` maps every student block in range."""
  if len(layers) != num_student_blocks:
    raise ValueError(
        f"{TRANSFER_LAYERS_FLAG} must name {num_student_blocks} teacher "
        f"blocks, one per student block; it names {len(layers)}. Received: "
        f"{TRANSFER_LAYERS_FLAG}={received!r}. Fix: "
        + _layers_hint(num_student_blocks, num_teacher_blocks) + ".")
  outside = [i for i in layers if not 0 <= i < num_teacher_blocks]
  if outside:
    raise ValueError(
        f"{TRANSFER_LAYERS_FLAG} names teacher blocks "
        f"{', '.join(map(str, outside))}, outside [0, {num_teacher_blocks}) "
        f"(the teacher has {num_teacher_blocks} blocks, numbered from 0). "
        f"Received: {TRANSFER_LAYERS_FLAG}={received!r}. Fix: "
        + _layers_hint(num_student_blocks, num_teacher_blocks) + ".")


def parse_transfer_layers(text: Optional[str], num_student_blocks: int,
                          num_teacher_blocks: int) -> Tuple[int, ...]:
  """The teacher block each student block learns from, from the flag's text.

  Args:
    text: str or None. The value of `--transfer_teacher_layers`:
      comma-separated 0-based teacher block indices, one per student block
      in order ("1,3" makes student block 0 learn from teacher block 1 and
      student block 1 from teacher block 3; repeats and any order allowed).
      None or empty: block `i` from block `i` (the original's pairing),
      which needs equally deep models.
    num_student_blocks: int. The student's `num_hidden_layers`.
    num_teacher_blocks: int. The teacher's `num_hidden_layers`.

  Returns:
    A tuple of `num_student_blocks` ints in `[0, num_teacher_blocks)`.

  Raises:
    ValueError: a piece is not an integer, the count is not the student's
      number of blocks, an index is out of range, or the text is empty while
      the depths differ; the message names `--transfer_teacher_layers`, the
      value and an evenly spaced mapping for these depths.
  """
  _check_block_count("num_student_blocks", num_student_blocks)
  _check_block_count("num_teacher_blocks", num_teacher_blocks)
  if text is None or not text.strip():
    if num_student_blocks != num_teacher_blocks:
      received = ("not set" if text is None
                  else f"Received: {TRANSFER_LAYERS_FLAG}={text!r}")
      raise ValueError(
          f"The student has {num_student_blocks} blocks and the teacher "
          f"{num_teacher_blocks}, so student block i cannot simply learn "
          f"from teacher block i ({received}). Set {TRANSFER_LAYERS_FLAG}: "
          + _layers_hint(num_student_blocks, num_teacher_blocks) + ".")
    return tuple(range(num_student_blocks))
  layers = []
  for piece in text.split(","):
    piece = piece.strip()
    try:
      layers.append(int(piece))
    except ValueError:
      raise ValueError(
          f"{TRANSFER_LAYERS_FLAG} must be comma-separated integers (teacher "
          f"block indices); {piece!r} is not one. Received: "
          f"{TRANSFER_LAYERS_FLAG}={text!r}. Fix: "
          + _layers_hint(num_student_blocks, num_teacher_blocks)
          + ".") from None
  _check_transfer_layers(layers, num_student_blocks, num_teacher_blocks, text)
  return tuple(layers)


# === Whether a student can learn from a teacher ===


def check_compatible(teacher_config: MobileBertConfig,
                     student_config: MobileBertConfig,
                     transfer_layers: Optional[Sequence[int]] = None,
                     attention: bool = True) -> None:
  """Raises unless the student can learn from the teacher.

  The copied non-encoder weights must have one shape in both models, and
  the losses compare the block outputs (width `hidden_size`) and, with
  attention transfer, the attention logits `[batch, heads, seq, seq]`.
  The blocks' insides (bottleneck widths, feed-forward networks,
  normalization) may differ: an IB-BERT teacher and a MobileBERT student
  share only the inter-block width. (A different `normalization_type` or
  pooler is allowed: those weights are then not copied, as in the
  original; see `copy_non_encoder_weights`.)

  Args:
    teacher_config: the teacher's `MobileBertConfig`.
    student_config: the student's `MobileBertConfig`.
    transfer_layers: sequence of ints or None. The teacher block of each
      student block (`parse_transfer_layers`); None pairs block `i` with
      block `i` (equal depths). Defaults to None.
    attention: bool. Attention is transferred (`--attention_distill_factor`
      non-zero): the head counts must match. Defaults to True.

  Raises:
    TypeError: a config is not a `MobileBertConfig`.
    ValueError: naming every config field that differs, both values and the
      fix; or a `transfer_layers` that does not fit the two depths.
  """
  for name, config in (("teacher_config", teacher_config),
                       ("student_config", student_config)):
    if not isinstance(config, MobileBertConfig):
      raise TypeError(f"`{name}` must be a MobileBertConfig. Received: "
                      f"{type(config).__name__}")
  fields = list(_SHARED_FIELDS)
  if attention:
    fields.append(("num_attention_heads",
                   "attention logits are compared head by head"))
  differing = [(field, why) for field, why in fields
               if getattr(teacher_config, field) !=
               getattr(student_config, field)]
  if differing:
    details = "; ".join(
        f"{field} (teacher {getattr(teacher_config, field)!r}, student "
        f"{getattr(student_config, field)!r}: {why})"
        for field, why in differing)
    wanted = ", ".join(f"{field}={getattr(teacher_config, field)!r}"
                       for field, _ in differing)
    fix = f"Pass a student config with {wanted}"
    if attention and [f for f, _ in differing] == ["num_attention_heads"]:
      fix += ", or set --attention_distill_factor=0 (no attention transfer)"
    raise ValueError(
        f"The student cannot learn from this teacher: {details}. {fix}.")
  if transfer_layers is None:
    parse_transfer_layers(None, student_config.num_hidden_layers,
                          teacher_config.num_hidden_layers)
    return
  layers = list(transfer_layers)
  if any(isinstance(i, bool) or not isinstance(i, int) for i in layers):
    raise ValueError(f"{TRANSFER_LAYERS_FLAG} must be integers. Received: "
                     f"{tuple(transfer_layers)!r}")
  _check_transfer_layers(layers, student_config.num_hidden_layers,
                         teacher_config.num_hidden_layers,
                         ",".join(map(str, layers)))


# === Starting the student from the teacher's non-encoder weights ===


class WeightMatch(NamedTuple):
  """The teacher's and the student's non-encoder variables, matched.

  Attributes:
    pairs: list of `(name, teacher_variable, student_variable)`, `name` the
      original checkpoint's (`bert/embeddings/word_embeddings`,
      `cls/predictions/output_bias`, ...).
    teacher_only: names of teacher variables the student has none of (e.g.
      the pooler for a student without one, or `bert/embeddings/LayerNorm/*`
      for a `no_norm` student, whose norm is `FakeLayerNorm`).
    student_only: names of student variables the teacher has none of.
  """
  pairs: List[Tuple[str, tf.Variable, tf.Variable]]
  teacher_only: List[str]
  student_only: List[str]


def _config_of(pretrainer, argument) -> MobileBertConfig:
  if not isinstance(pretrainer, MobileBertPretrainer):
    raise TypeError(f"`{argument}` must be a MobileBertPretrainer. "
                    f"Received: {type(pretrainer).__name__}")
  try:
    values = pretrainer.get_config()["config"]
  except NotImplementedError:
    raise TypeError(
        f"`{argument}` has no MobileBertConfig: build it with "
        "build_pretrainer(config) (its weights are matched by the config's "
        "checkpoint names).") from None
  return MobileBertConfig.from_dict(values)


def _block_variables(encoder, attribute="variables"):
  """One list per block of the block's variables, in block order."""
  return [list(getattr(block, attribute))
          for block in encoder.transformer_layers]


def _non_encoder_variables(pretrainer) -> List[tf.Variable]:
  """The unique variables of `checkpoint_items` outside the blocks."""
  in_blocks = {v.ref() for block in _block_variables(
      pretrainer.encoder_network) for v in block}
  return [v for v in restore.unique_variables(
      *pretrainer.checkpoint_items.values()) if v.ref() not in in_blocks]


def _non_encoder_table(pretrainer, config):
  """{original name: variable} of the pretrainer's non-encoder weights.

  Generated from its config by the converter's exact name table, so every
  name leads to one variable by attribute path (not by variable name or
  order). A variable outside the blocks that the table misses is listed by
  its Keras name (none is, unless the table and the model disagree).
  """
  items = pretrainer.checkpoint_items
  table = name_map.tf1_to_keras(config, with_mlm="masked_lm" in items,
                                with_nsp="next_sentence" in items)
  variables = {name: name_map.resolve(items, entry.keras_path)
               for name, entry in table.items()
               if not name.startswith(_ENCODER_SCOPE)}
  reached = {v.ref() for v in variables.values()}
  for variable in _non_encoder_variables(pretrainer):
    if variable.ref() not in reached:
      variables[_keras_name(pretrainer, variable)] = variable
  return variables


def _keras_name(pretrainer, variable) -> str:
  """The variable's name without the pretrainer's name scope and `:0`."""
  name = variable.name.split(":")[0]
  prefix = pretrainer.name + "/"
  return name[len(prefix):] if name.startswith(prefix) else name


def match_non_encoder_weights(teacher, student) -> WeightMatch:
  """Pairs every teacher variable outside the blocks with the student's.

  Matched as the original matches them (`get_assignment_map_from_checkpoint`
  with `init_embedding=True`): by checkpoint name outside `bert/encoder/`,
  names generated from each model's config (`checkpoints.name_map`) and
  followed to each model's variable by attribute path. Each pair is then
  checked: both variables have the same Keras name (the model's own name
  scope stripped) and the same shape.

  Args:
    teacher: the teacher `MobileBertPretrainer` (`build_pretrainer`).
    student: the student `MobileBertPretrainer` (`build_pretrainer`).

  Returns:
    A `WeightMatch`, in the teacher's table order.

  Raises:
    TypeError: a model is not a pretrainer built by `build_pretrainer`.
    ValueError: a matched pair differs in shape or name (naming the
      variable, both shapes and the config fields to make equal).
  """
  teacher_config = _config_of(teacher, "teacher")
  student_config = _config_of(student, "student")
  teacher_table = _non_encoder_table(teacher, teacher_config)
  student_table = _non_encoder_table(student, student_config)
  pairs = []
  for name, teacher_variable in teacher_table.items():
    if name not in student_table:
      continue
    student_variable = student_table[name]
    if teacher_variable.shape != student_variable.shape:
      fields = [f"{field}={getattr(teacher_config, field)!r}"
                for field, _ in _SHARED_FIELDS
                if getattr(teacher_config, field) !=
                getattr(student_config, field)]
      raise ValueError(
          f"Cannot copy the teacher's {name} into the student: shape "
          f"{tuple(teacher_variable.shape)} vs the student's "
          f"{tuple(student_variable.shape)}. Pass a student config with the "
          f"teacher's {', '.join(fields) or 'sizes'} (see "
          "check_compatible).")
    names = (_keras_name(teacher, teacher_variable),
             _keras_name(student, student_variable))
    if names[0] != names[1]:
      raise ValueError(
          f"Cannot copy the teacher's {name} into the student: it is the "
          f"teacher's {names[0]} but the student's {names[1]}; the two "
          "models are not built alike (build both with build_pretrainer).")
    pairs.append((name, teacher_variable, student_variable))
  return WeightMatch(
      pairs=pairs,
      teacher_only=[n for n in teacher_table if n not in student_table],
      student_only=[n for n in student_table if n not in teacher_table])


def _list_names(names):
  more = (f" (and {len(names) - _MAX_NAMES} more)"
          if len(names) > _MAX_NAMES else "")
  return ", ".join(names[:_MAX_NAMES]) + more


def copy_non_encoder_weights(teacher, student,
                             log: Callable[[str], None] = logging.warning
                             ) -> List[str]:
  """Sets the student's non-encoder weights to the teacher's, bit for bit.

  The embeddings (word, position and token-type tables, the embedding
  transformation, its normalization), the pooler, the masked-LM head
  (transform dense and LayerNorm, output bias, `extra_output_weights`) and
  the next-sentence head: every pair `match_non_encoder_weights` finds.
  The transformer blocks are left alone. Variables of one model that the
  other has none of (a pooler only in the teacher, an embedding
  `LayerNorm` teacher and a `no_norm` student) are not copied, as in the
  original, and are named in one `log` line.

  Args:
    teacher: the teacher `MobileBertPretrainer`, its weights loaded.
    student: the student `MobileBertPretrainer`.
    log: callable taking one line, about what was not copied. Defaults to
      absl `logging.warning`.

  Returns:
    The original checkpoint names of the copied variables, e.g.
    `bert/embeddings/word_embeddings`, `cls/predictions/output_bias`,
    `cls/seq_relationship/output_weights`.

  Raises:
    TypeError, ValueError: as `match_non_encoder_weights`.
  """
  match = match_non_encoder_weights(teacher, student)
  for _, teacher_variable, student_variable in match.pairs:
    student_variable.assign(teacher_variable)
  if match.teacher_only:
    log(f"Not copied into the student (it has no such variable): "
        f"{_list_names(match.teacher_only)}.")
  if match.student_only:
    log(f"Student variables left at their initial values (the teacher has "
        f"no such variable): {_list_names(match.student_only)}.")
  return [name for name, _, _ in match.pairs]


def load_teacher_checkpoint(teacher, teacher_config: MobileBertConfig,
                            checkpoint_path: str,
                            log: Callable[[str], None] = logging.info) -> str:
  """Restores the teacher, strictly: `restore.load_checkpoint` for it.

  Any format the library reads (TF2 checkpoints of `python -m
  training.pretrain` or the converter, original TF1 checkpoints); messages
  name `--teacher_checkpoint`.

  Args:
    teacher: the teacher `MobileBertPretrainer` (`Distiller.teacher`).
    teacher_config: its configuration.
    checkpoint_path: str. Prefix, one of its files, or its directory.
    log: callable taking one progress line. Defaults to absl `logging.info`.

  Returns:
    "tf1" or "tf2", the format found.

  Raises:
    FileNotFoundError, ValueError: as `restore.load_checkpoint`.
  """
  return restore.load_checkpoint(teacher, teacher_config, checkpoint_path,
                                 log=log, flag=TEACHER_CHECKPOINT_FLAG)


# === The model ===


class Distiller(tf_keras.Model):
  """A frozen teacher and a trainable student, run side by side.

  Only the student trains: the teacher is set non-trainable (its variables
  are in neither `trainable_variables` nor `checkpoint_items`, so they get
  no gradient, no optimizer slot and no weight decay), always runs with
  `training=False`, and every tensor it returns is under `tf.stop_gradient`.
  Setting `distiller.trainable` leaves the teacher frozen.

  The student also runs with `training=False` whatever `training` says: no
  dropout during distillation, as in the original, which builds the student
  with `is_training=False` whenever a teacher is present (the student's
  dropout returns in ordinary pretraining and fine-tuning).

  Args:
    teacher: a `MobileBertPretrainer` (its `masked_lm` head is used for the
      soft targets). Set non-trainable here.
    student: a `MobileBertPretrainer`.
    temperature: float. The teacher's sequence output is multiplied by it
      before the teacher's masked-LM head (the original's
      `--distill_temperature`). Defaults to 1.0.
    use_teacher_mlm: bool. Compute the teacher's masked-LM logits (needed
      for soft targets, i.e. a ground-truth ratio below 1). Defaults to
      True.

  Call args:
    features: dict of the pretraining features with the model-side names
      (`training.records`): int32 `input_word_ids`, `input_mask`,
      `input_type_ids` `[batch, seq]`, `masked_lm_positions`
      `[batch, num_predictions]`; other keys (labels) are ignored.
    training: ignored (see above).

  Returns:
    dict with
    `student`: the student pretrainer's outputs (`mlm_logits`
      `[batch, P, vocab]`, `next_sentence` `[batch, 2]`, `sequence_output`,
      `pooled_output`, `encoder_outputs`, `embedding_output`, and
      `attention_logits` when it was built with them);
    `teacher`: the teacher encoder's outputs (the same keys, blocks of the
      teacher's widths) plus `mlm_logits` `[batch, P, vocab]` =
      `teacher.masked_lm(temperature * sequence_output,
      masked_lm_positions)` with `use_teacher_mlm`; all under
      `tf.stop_gradient`.

  Raises:
    TypeError: a model is not a `MobileBertPretrainer`.
    ValueError: `teacher is student`, or a non-positive `temperature`.

  Example:
  >>> distiller = Distiller(teacher, student, temperature=1.0)
  >>> outputs = distiller(features)
  >>> tape.gradient(loss(outputs), distiller.trainable_variables)
  """

  def __init__(self, teacher, student, temperature=1.0, use_teacher_mlm=True,
               name="distiller", **kwargs):
    super().__init__(name=name, **kwargs)
    for argument, model in (("teacher", teacher), ("student", student)):
      if not isinstance(model, MobileBertPretrainer):
        raise TypeError(f"`{argument}` must be a MobileBertPretrainer. "
                        f"Received: {type(model).__name__}")
    if teacher is student:
      raise ValueError("`teacher` and `student` must be two models; the "
                       "same pretrainer was passed as both.")
    if (isinstance(temperature, bool) or
        not isinstance(temperature, (int, float)) or
        not math.isfinite(temperature) or temperature <= 0):
      raise ValueError(
          "`temperature` (--distill_temperature) must be a positive number. "
          f"Received: temperature={temperature!r}")
    teacher.trainable = False
    self._teacher = teacher
    self._student = student
    self.temperature = float(temperature)
    self.use_teacher_mlm = bool(use_teacher_mlm)
    # Both parts are built; nothing of the distiller's own is.
    self.built = True

  @property
  def trainable(self):
    return self._trainable

  @trainable.setter
  def trainable(self, value):
    # Keras sets every sublayer; the teacher must stay frozen.
    tf_keras.Model.trainable.fset(self, value)
    teacher = getattr(self, "_teacher", None)
    if teacher is not None:
      teacher.trainable = False

  @property
  def teacher(self) -> MobileBertPretrainer:
    """The frozen teacher pretrainer."""
    return self._teacher

  @property
  def student(self) -> MobileBertPretrainer:
    """The student pretrainer."""
    return self._student

  def call(self, features, training=None):
    del training  # Both run without dropout (see the class docstring).
    student_outputs = self._student(features, training=False)
    teacher = self._teacher
    teacher_outputs = dict(teacher.encoder_network(
        {k: features[k] for k in ENCODER_INPUTS}, training=False))
    if self.use_teacher_mlm:
      if "masked_lm_positions" not in features:
        raise ValueError(
            "The teacher's masked-LM logits need features"
            "['masked_lm_positions']; pass it, or use_teacher_mlm=False.")
      teacher_outputs["mlm_logits"] = teacher.masked_lm(
          self.temperature * teacher_outputs["sequence_output"],
          features["masked_lm_positions"])
    return dict(student=student_outputs,
                teacher=tf.nest.map_structure(tf.stop_gradient,
                                              teacher_outputs))

  def block_variables(self) -> List[List[tf.Variable]]:
    """Per student block, in order, that block's trainable variables."""
    return _block_variables(self._student.encoder_network,
                            "trainable_variables")

  def encoder_block_variables(self) -> List[tf.Variable]:
    """The trainable variables of all student blocks, block after block."""
    return [v for block in self.block_variables() for v in block]

  def non_encoder_variables(self) -> List[tf.Variable]:
    """The student's trainable variables outside its blocks.

    Embeddings, pooler, masked-LM and next-sentence heads; the tied word
    embedding table once.
    """
    in_blocks = {v.ref() for v in self.encoder_block_variables()}
    return [v for v in self._student.trainable_variables
            if v.ref() not in in_blocks]

  @property
  def checkpoint_items(self):
    """The STUDENT's `checkpoint_items`: the teacher is never saved with it.

    A checkpoint of these restores into `build_pretrainer(student_config,
    with_nsp=...)`, like any pretraining checkpoint.
    """
    return self._student.checkpoint_items


def build_distiller(teacher_config: MobileBertConfig,
                    student_config: MobileBertConfig,
                    temperature: float = 1.0,
                    attention: bool = True,
                    transfer_layers: Optional[Sequence[int]] = None,
                    use_teacher_mlm: bool = True) -> Distiller:
  """Builds the teacher and the student pretrainers (with NSP heads).

  Call it inside `strategy.scope()`. The weights are fresh: load the
  teacher (`load_teacher_checkpoint`), then copy its non-encoder weights
  into the student (`copy_non_encoder_weights`).

  Args:
    teacher_config: the teacher's `MobileBertConfig` (e.g. the IB-BERT
      preset `uncased_L-24_H-1024_B-512_A-4`).
    student_config: the student's `MobileBertConfig`.
    temperature: float. See `Distiller`. Defaults to 1.0.
    attention: bool. Attention is transferred: both models also return
      their attention logits (one `[batch, heads, seq, seq]` per block,
      which cost memory) and the head counts must match. Defaults to True.
    transfer_layers: sequence of ints or None. The teacher block of each
      student block (`parse_transfer_layers`); None pairs block `i` with
      block `i` (equal depths). Defaults to None.
    use_teacher_mlm: bool. See `Distiller`. Defaults to True.

  Returns:
    The `Distiller`.

  Raises:
    ValueError: the student cannot learn from the teacher
      (`check_compatible`), or a bad `temperature`.
  """
  check_compatible(teacher_config, student_config, transfer_layers,
                   attention=attention)
  teacher = build_pretrainer(teacher_config, with_nsp=True, name="teacher",
                             return_attention_logits=attention)
  student = build_pretrainer(student_config, with_nsp=True, name="student",
                             return_attention_logits=attention)
  return Distiller(teacher, student, temperature=temperature,
                   use_teacher_mlm=use_teacher_mlm)
