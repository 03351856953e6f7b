"""The teacher-student model of distillation (`training.distiller`).

One tiny IB-BERT-like teacher (4 blocks, inverted bottleneck 64, LayerNorm,
GELU, pooler) and one MobileBERT-like student (2 blocks, bottleneck 16,
NoNorm, ReLU, no pooler), both with dropout so that "no dropout" can fail,
built once for the module; tests that change weights compare with
snapshots of their own.
"""

import numpy as np
import pytest
import tensorflow as tf

from checkpoints import restore
from mobilebert_tf import optimization
from mobilebert_tf.config import MobileBertConfig
from mobilebert_tf.encoder import ENCODER_INPUTS
from mobilebert_tf.pretrainer import build_pretrainer
from tests import helpers
from training import distiller as distiller_lib

FLAG = "--transfer_teacher_layers"

_SHARED = dict(vocab_size=100, hidden_size=32, embedding_size=16,
               num_attention_heads=4, intermediate_size=32,
               trigram_input=True, use_bottleneck=True,
               max_position_embeddings=16, type_vocab_size=2,
               hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.2)
TEACHER = MobileBertConfig(num_hidden_layers=4, intra_bottleneck_size=64,
                           hidden_act="gelu", normalization_type="layer_norm",
                           classifier_activation=True, **_SHARED)
STUDENT = MobileBertConfig(num_hidden_layers=2, intra_bottleneck_size=16,
                           key_query_shared_bottleneck=True,
                           num_feedforward_networks=2, hidden_act="relu",
                           normalization_type="no_norm",
                           classifier_activation=False, **_SHARED)
LAYERS = (1, 3)


@pytest.fixture(scope="module")
def distiller():
  return distiller_lib.build_distiller(TEACHER, STUDENT, temperature=1.0,
                                       transfer_layers=LAYERS)


@pytest.fixture(scope="module")
def features():
  return {k: tf.constant(v) for k, v in
          helpers.make_encoder_inputs(STUDENT, batch=3, seq=8).items()}


def _values(variables):
  return [v.numpy().copy() for v in variables]


def _refs(variables):
  return {v.ref() for v in variables}


# === parse_transfer_layers ===


@pytest.mark.parametrize("text,student,teacher,expected", [
    (None, 3, 3, (0, 1, 2)),
    ("", 2, 2, (0, 1)),
    ("  ", 2, 2, (0, 1)),
    ("1,3", 2, 4, (1, 3)),
    (" 3, 7 ,11", 3, 12, (3, 7, 11)),
    ("0,0", 2, 1, (0, 0)),
    ("3,1", 2, 4, (3, 1)),
], ids=["none", "empty", "blank", "pair", "spaces", "repeat", "any_order"])
def test_parse_transfer_layers(text, student, teacher, expected):
  assert distiller_lib.parse_transfer_layers(text, student,
                                             teacher) == expected


@pytest.mark.parametrize("text,student,teacher,words", [
    ("1,2,3", 2, 4, ["names 3", "one per student block"]),
    ("1", 2, 4, ["names 1"]),
    ("1,4", 2, 4, ["4", "outside [0, 4)"]),
    ("-1,3", 2, 4, ["-1", "outside [0, 4)"]),
    ("1,x", 2, 4, ["'x' is not one"]),
    ("1.5,3", 2, 4, ["'1.5' is not one"]),
    ("1,,3", 2, 4, ["'' is not one"]),
    (None, 2, 4, ["2 blocks and the teacher 4"]),
    ("", 3, 12, ["3 blocks and the teacher 12"]),
], ids=["too_many", "too_few", "too_large", "negative", "word", "float",
        "empty_piece", "identity_unequal", "empty_unequal"])
def test_parse_transfer_layers_errors(text, student, teacher, words):
  with pytest.raises(ValueError) as raised:
    distiller_lib.parse_transfer_layers(text, student, teacher)
  message = str(raised.value)
  for word in [FLAG] + words:
    assert word in message
  # The fix: an evenly spaced mapping for these depths, ready to paste.
  suggestion = ",".join(map(str, distiller_lib.evenly_spaced_transfer_layers(
      student, teacher)))
  assert f"{FLAG}={suggestion}" in message
  if text is not None:
    assert repr(text) in message


@pytest.mark.parametrize("student,teacher,expected", [
    (2, 4, (1, 3)), (3, 3, (0, 1, 2)), (3, 5, (1, 3, 4)),
    (4, 2, (0, 0, 1, 1)), (1, 24, (23,)),
])
def test_evenly_spaced_transfer_layers(student, teacher, expected):
  assert distiller_lib.evenly_spaced_transfer_layers(student,
                                                     teacher) == expected


def test_block_counts_must_be_positive():
  with pytest.raises(ValueError, match="num_teacher_blocks"):
    distiller_lib.parse_transfer_layers("1", 1, 0)


# === check_compatible ===


def test_ib_bert_teacher_and_thin_student_are_compatible():
  distiller_lib.check_compatible(TEACHER, STUDENT, LAYERS)
  distiller_lib.check_compatible(TEACHER, STUDENT, LAYERS, attention=False)
  distiller_lib.check_compatible(TEACHER, TEACHER, None)


@pytest.mark.parametrize("changes,fields", [
    (dict(hidden_size=64), ["hidden_size"]),
    (dict(vocab_size=64, max_position_embeddings=32),
     ["vocab_size", "max_position_embeddings"]),
    (dict(trigram_input=False), ["trigram_input"]),
    (dict(type_vocab_size=3), ["type_vocab_size"]),
    (dict(embedding_size=8), ["embedding_size"]),
], ids=["hidden", "vocab_and_positions", "trigram", "types", "embedding"])
def test_check_compatible_names_differing_fields(changes, fields):
  student = STUDENT.replace(**changes)
  with pytest.raises(ValueError) as raised:
    distiller_lib.check_compatible(TEACHER, student, LAYERS)
  message = str(raised.value)
  for field in fields:
    assert (f"{field} (teacher {getattr(TEACHER, field)!r}, student "
            f"{getattr(student, field)!r}") in message
    assert f"{field}={getattr(TEACHER, field)!r}" in message  # the fix
  assert "attention_distill_factor" not in message


def test_check_compatible_heads_only_with_attention_transfer():
  student = STUDENT.replace(num_attention_heads=2)
  with pytest.raises(ValueError) as raised:
    distiller_lib.check_compatible(TEACHER, student, LAYERS)
  message = str(raised.value)
  assert "num_attention_heads (teacher 4, student 2" in message
  assert "num_attention_heads=4" in message
  assert "--attention_distill_factor=0" in message
  distiller_lib.check_compatible(TEACHER, student, LAYERS, attention=False)


def test_check_compatible_checks_the_transfer_layers():
  with pytest.raises(ValueError, match=f"{FLAG}.*outside"):
    distiller_lib.check_compatible(TEACHER, STUDENT, (1, 4))
  with pytest.raises(ValueError, match=f"{FLAG}.*names 1"):
    distiller_lib.check_compatible(TEACHER, STUDENT, (3,))
  with pytest.raises(ValueError, match=f"Set {FLAG}"):
    distiller_lib.check_compatible(TEACHER, STUDENT, None)
  with pytest.raises(TypeError, match="student_config"):
    distiller_lib.check_compatible(TEACHER, STUDENT.to_dict(), LAYERS)


def test_build_distiller_checks_before_building():
  with pytest.raises(ValueError, match="hidden_size"):
    distiller_lib.build_distiller(TEACHER, STUDENT.replace(hidden_size=64),
                                  transfer_layers=LAYERS)
  with pytest.raises(ValueError, match=FLAG):
    distiller_lib.build_distiller(TEACHER, STUDENT)


# === copy_non_encoder_weights ===


def test_copy_non_encoder_weights(distiller):
  teacher, student = distiller.teacher, distiller.student
  # New starting values, so that "equal afterwards" means copied.
  rng = np.random.default_rng(7)
  for variable in distiller.non_encoder_variables():
    variable.assign(rng.normal(size=variable.shape).astype(np.float32))
  blocks_before = _values(distiller.encoder_block_variables())
  embedding_norm = student.encoder_network.embedding_layer.layer_norm
  norm_before = _values([embedding_norm.gamma, embedding_norm.beta])
  lines = []
  copied = distiller_lib.copy_non_encoder_weights(teacher, student,
                                                  log=lines.append)
  assert copied == [
      "bert/embeddings/word_embeddings",
      "bert/embeddings/embedding_transformation/kernel",
      "bert/embeddings/embedding_transformation/bias",
      "bert/embeddings/token_type_embeddings",
      "bert/embeddings/position_embeddings",
      "cls/predictions/transform/dense/kernel",
      "cls/predictions/transform/dense/bias",
      "cls/predictions/transform/LayerNorm/gamma",
      "cls/predictions/transform/LayerNorm/beta",
      "cls/predictions/output_bias",
      "cls/predictions/extra_output_weights",
      "cls/seq_relationship/output_weights",
      "cls/seq_relationship/output_bias",
  ]
  embedding = teacher.encoder_network.embedding_layer
  student_embedding = student.encoder_network.embedding_layer
  pairs = [
      (embedding.word_embedding.embeddings,
       student_embedding.word_embedding.embeddings),
      (embedding.type_embedding.embeddings,
       student_embedding.type_embedding.embeddings),
      (embedding.pos_embedding.embeddings,
       student_embedding.pos_embedding.embeddings),
      (embedding.word_embedding_proj.kernel,
       student_embedding.word_embedding_proj.kernel),
      (embedding.word_embedding_proj.bias,
       student_embedding.word_embedding_proj.bias),
      (teacher.masked_lm.dense.kernel, student.masked_lm.dense.kernel),
      (teacher.masked_lm.dense.bias, student.masked_lm.dense.bias),
      (teacher.masked_lm.layer_norm.gamma, student.masked_lm.layer_norm.gamma),
      (teacher.masked_lm.layer_norm.beta, student.masked_lm.layer_norm.beta),
      (teacher.masked_lm.bias, student.masked_lm.bias),
      (teacher.masked_lm.extra_output_weights,
       student.masked_lm.extra_output_weights),
      (teacher.next_sentence.kernel, student.next_sentence.kernel),
      (teacher.next_sentence.bias, student.next_sentence.bias),
  ]
  for teacher_variable, student_variable in pairs:
    assert teacher_variable is not student_variable
    np.testing.assert_array_equal(student_variable.numpy(),
                                  teacher_variable.numpy(),
                                  err_msg=student_variable.name)
  # The tied table is copied once and stays tied.
  assert student.masked_lm.embedding_table is (
      student_embedding.word_embedding.embeddings)
  for before, after in zip(blocks_before, distiller.encoder_block_variables()):
    np.testing.assert_array_equal(before, after.numpy(), err_msg=after.name)
  # A LayerNorm teacher's embedding norm is no NoNorm's (the original's
  # names differ, so it copies neither); the pooler only the teacher has.
  for value, variable in zip(norm_before, (embedding_norm.gamma,
                                          embedding_norm.beta)):
    np.testing.assert_array_equal(value, variable.numpy())
  assert len(lines) == 2
  assert ("bert/embeddings/LayerNorm/gamma, bert/embeddings/LayerNorm/beta, "
          "bert/pooler/dense/kernel, bert/pooler/dense/bias") in lines[0]
  assert ("bert/embeddings/FakeLayerNorm/gamma, "
          "bert/embeddings/FakeLayerNorm/beta") in lines[1]


def test_copy_covers_every_non_encoder_variable_of_a_like_student(distiller):
  # A one-block student of the teacher's normalization, with a pooler:
  # every variable outside its blocks comes from the teacher.
  student = build_pretrainer(
      TEACHER.replace(num_hidden_layers=1, intra_bottleneck_size=16),
      with_nsp=True, name="like_student")
  lines = []
  copied = distiller_lib.copy_non_encoder_weights(distiller.teacher, student,
                                                  log=lines.append)
  assert not lines
  match = distiller_lib.match_non_encoder_weights(distiller.teacher, student)
  assert [name for name, _, _ in match.pairs] == copied
  assert "bert/pooler/dense/kernel" in copied
  assert "bert/embeddings/LayerNorm/gamma" in copied
  blocks = {v.ref() for block in student.encoder_network.transformer_layers
            for v in block.variables}
  outside = [v for v in restore.unique_variables(
      *student.checkpoint_items.values()) if v.ref() not in blocks]
  assert _refs(s for _, _, s in match.pairs) == _refs(outside)
  for _, teacher_variable, student_variable in match.pairs:
    np.testing.assert_array_equal(student_variable.numpy(),
                                  teacher_variable.numpy())


def test_copy_shape_mismatch_names_the_variable(distiller):
  student = build_pretrainer(
      STUDENT.replace(num_hidden_layers=1, max_position_embeddings=8),
      with_nsp=True)
  before = _values(student.variables)
  with pytest.raises(ValueError) as raised:
    distiller_lib.copy_non_encoder_weights(distiller.teacher, student)
  message = str(raised.value)
  assert "bert/embeddings/position_embeddings" in message
  assert "(16, 32)" in message and "(8, 32)" in message
  assert "max_position_embeddings=16" in message
  assert "vocab_size" not in message
  # Checked before anything is assigned.
  for value, variable in zip(before, student.variables):
    np.testing.assert_array_equal(value, variable.numpy())


def test_copy_needs_pretrainers(distiller):
  with pytest.raises(TypeError, match="student"):
    distiller_lib.copy_non_encoder_weights(distiller.teacher,
                                           distiller.student.encoder_network)


# === Distiller ===


def test_teacher_is_frozen(distiller):
  trainable = _refs(distiller.trainable_variables)
  assert trainable == _refs(distiller.student.trainable_variables)
  assert not trainable & _refs(distiller.teacher.variables)
  assert not distiller.teacher.trainable_variables
  distiller.trainable = True  # Keras would unfreeze every sublayer.
  assert not distiller.teacher.trainable
  assert not _refs(distiller.trainable_variables) & _refs(
      distiller.teacher.variables)


def test_training_step_changes_only_the_student(distiller, features):
  teacher, student = distiller.teacher, distiller.student
  optimizer = optimization.create_optimizer(
      "adamw", 1e-2, num_train_steps=10, weight_decay_rate=0.1,
      global_clipnorm=None)
  teacher_before = _values(teacher.variables)
  student_before = _values(student.trainable_variables)
  variables = distiller.trainable_variables
  with tf.GradientTape() as tape:
    outputs = distiller(features, training=True)
    s, t = outputs["student"], outputs["teacher"]
    # Terms that would reach the teacher's variables, were its tensors not
    # stopped (the tape watches them: they are trainable tf.Variables).
    loss = (tf.reduce_sum(s["mlm_logits"] ** 2) +
            tf.reduce_sum(t["mlm_logits"] * s["mlm_logits"]) +
            tf.reduce_sum(t["encoder_outputs"][3] * s["encoder_outputs"][1]) +
            tf.reduce_sum(t["pooled_output"] * s["next_sentence"][:, :1]))
  gradients = tape.gradient(loss, variables + teacher.variables)
  student_gradients = gradients[:len(variables)]
  assert all(g is None for g in gradients[len(variables):])
  assert all(g is not None for g in student_gradients)
  optimizer.apply_gradients(zip(student_gradients, variables))
  for value, variable in zip(teacher_before, teacher.variables):
    np.testing.assert_array_equal(value, variable.numpy(),
                                  err_msg=variable.name)
  # Adam's first step moves a variable by about the learning rate where
  # |gradient| >> epsilon (1e-6); some gradients are ~0 by symmetry (the key
  # bias under the softmax, the attention under constant values).
  moved = 0
  for value, variable, gradient in zip(student_before,
                                       student.trainable_variables,
                                       student_gradients):
    if np.abs(tf.convert_to_tensor(gradient).numpy()).max() > 1e-4:
      assert not np.array_equal(value, variable.numpy()), variable.name
      moved += 1
  assert moved > len(variables) // 2


def test_teacher_masked_lm_logits_use_the_temperature(distiller, features):
  teacher = distiller.teacher
  encoder_inputs = {k: features[k] for k in ENCODER_INPUTS}
  sequence_output = teacher.encoder_network(encoder_inputs,
                                            training=False)["sequence_output"]
  hot = distiller_lib.Distiller(teacher, distiller.student, temperature=2.5)
  expected = teacher.masked_lm(2.5 * sequence_output,
                               features["masked_lm_positions"])
  logits = hot(features)["teacher"]["mlm_logits"]
  assert logits.shape == (3, 3, STUDENT.vocab_size)
  np.testing.assert_allclose(logits.numpy(), expected.numpy(), rtol=1e-6,
                             atol=1e-6)
  plain = distiller(features)["teacher"]["mlm_logits"]
  assert not np.allclose(plain.numpy(), logits.numpy(), rtol=1e-3)
  np.testing.assert_allclose(
      plain.numpy(), teacher(features, training=False)["mlm_logits"].numpy(),
      rtol=1e-6, atol=1e-6)
  cold = distiller_lib.Distiller(teacher, distiller.student,
                                 use_teacher_mlm=False)
  assert "mlm_logits" not in cold(features)["teacher"]


def test_outputs_have_no_dropout_in_training(distiller, features):
  first = distiller(features, training=True)
  second = distiller(features, training=True)
  for key in ("mlm_logits", "next_sentence", "sequence_output"):
    np.testing.assert_array_equal(first["student"][key].numpy(),
                                  second["student"][key].numpy())
  for key in ("mlm_logits", "sequence_output"):
    np.testing.assert_array_equal(first["teacher"][key].numpy(),
                                  second["teacher"][key].numpy())
  inference = distiller.student(features, training=False)["mlm_logits"]
  np.testing.assert_array_equal(first["student"]["mlm_logits"].numpy(),
                                inference.numpy())
  # In a graph too, as the training loop runs it (graph rewrites round
  # differently from eager ops: float32 rounding, not dropout's 20%).
  graph = tf.function(lambda f: distiller(f, training=True), autograph=False)
  runs = [graph(features) for _ in range(2)]
  for part in ("student", "teacher"):
    np.testing.assert_array_equal(runs[0][part]["mlm_logits"].numpy(),
                                  runs[1][part]["mlm_logits"].numpy())
    np.testing.assert_allclose(runs[0][part]["mlm_logits"].numpy(),
                               first[part]["mlm_logits"].numpy(),
                               rtol=1e-5, atol=1e-6)
  # The control: the student alone drops out when training.
  dropped = distiller.student(features, training=True)["mlm_logits"]
  assert not np.allclose(dropped.numpy(), inference.numpy(), rtol=1e-2)


def test_outputs(distiller, features):
  outputs = distiller(features)
  student, teacher = outputs["student"], outputs["teacher"]
  assert len(student["encoder_outputs"]) == 2
  assert len(teacher["encoder_outputs"]) == 4
  assert [a.shape for a in teacher["attention_logits"]] == [(3, 4, 8, 8)] * 4
  assert [a.shape for a in student["attention_logits"]] == [(3, 4, 8, 8)] * 2
  assert student["next_sentence"].shape == (3, 2)
  assert "next_sentence" not in teacher
  with pytest.raises(ValueError, match="masked_lm_positions"):
    distiller({k: features[k] for k in ENCODER_INPUTS})


def test_variable_groups(distiller):
  blocks = distiller.block_variables()
  layers = distiller.student.encoder_network.transformer_layers
  assert len(blocks) == STUDENT.num_hidden_layers
  for block, layer in zip(blocks, layers):
    assert block and _refs(block) == _refs(layer.trainable_variables)
  flat = distiller.encoder_block_variables()
  assert [v.ref() for v in flat] == [v.ref() for b in blocks for v in b]
  others = distiller.non_encoder_variables()
  assert not _refs(flat) & _refs(others)
  assert len(flat) + len(others) == len(distiller.student.trainable_variables)
  assert _refs(flat) | _refs(others) == _refs(
      distiller.student.trainable_variables)
  assert len(others) == len(_refs(others))  # the tied table once


def test_checkpoint_items_are_the_students(distiller, tmp_path):
  items = distiller.checkpoint_items
  assert set(items) == {"encoder", "masked_lm", "next_sentence"}
  assert items["encoder"] is distiller.student.encoder_network
  path = tf.train.Checkpoint(**items).write(str(tmp_path / "ckpt"))
  roots = {name.split("/")[0] for name, _ in tf.train.list_variables(path)}
  assert roots == {"encoder", "masked_lm", "next_sentence",
                   "_CHECKPOINTABLE_OBJECT_GRAPH"}
  fresh = build_pretrainer(STUDENT, with_nsp=True)
  # Strict: every variable restored, none of the checkpoint's left over.
  assert restore.load_checkpoint(fresh, STUDENT, path) == "tf2"
  for mine, theirs in zip(distiller.student.variables, fresh.variables):
    np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


def test_load_teacher_checkpoint(distiller, tmp_path):
  teacher = distiller.teacher
  before = _values(teacher.variables)
  path = tf.train.Checkpoint(**teacher.checkpoint_items).write(
      str(tmp_path / "teacher" / "ckpt"))
  for variable in teacher.variables:
    variable.assign(tf.zeros_like(variable))
  assert distiller_lib.load_teacher_checkpoint(teacher, TEACHER,
                                               path) == "tf2"
  for value, variable in zip(before, teacher.variables):
    np.testing.assert_array_equal(value, variable.numpy())
  with pytest.raises(FileNotFoundError, match="--teacher_checkpoint"):
    distiller_lib.load_teacher_checkpoint(teacher, TEACHER,
                                          str(tmp_path / "missing"))


def test_distiller_argument_errors(distiller):
  teacher, student = distiller.teacher, distiller.student
  with pytest.raises(ValueError, match="temperature"):
    distiller_lib.Distiller(teacher, student, temperature=0.0)
  with pytest.raises(ValueError, match="temperature"):
    distiller_lib.Distiller(teacher, student, temperature=float("nan"))
  with pytest.raises(ValueError, match="two models"):
    distiller_lib.Distiller(student, student)
  with pytest.raises(TypeError, match="teacher"):
    distiller_lib.Distiller(teacher.encoder_network, student)


def test_build_distiller_without_attention(features):
  teacher = TEACHER.replace(num_hidden_layers=1, num_attention_heads=2)
  student = STUDENT.replace(num_hidden_layers=1)
  small = distiller_lib.build_distiller(teacher, student, attention=False)
  outputs = small(features)
  assert "attention_logits" not in outputs["student"]
  assert "attention_logits" not in outputs["teacher"]
  assert set(small.checkpoint_items) == {"encoder", "masked_lm",
                                         "next_sentence"}
