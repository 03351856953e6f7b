"""Quantization-aware training (`layers.quantization`, `use_quantized_training`).

Checked against NumPy versions of the original's formulas (moving-average
activation ranges, symmetric narrow-range weights, TensorFlow's range
nudging), against the original's placement (how many fake-quantization ops
`modeling.py` puts in a block of each shape), through checkpoints in both
directions, through the full-integer TFLite conversion (read back from the
flatbuffer: int8 per the TFLite specification) and through the classifier
CLI's `--quantization_aware`.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# pylint: disable=g-import-not-at-top
import collections
import json
import re
import sys

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from checkpoints import restore
from export import tflite_convert
from mobilebert_tf import _compat
from mobilebert_tf import heads
from mobilebert_tf import MobileBertConfig
from mobilebert_tf import build_encoder
from mobilebert_tf import build_pretrainer
from mobilebert_tf.layers import MobileBertTransformer
from mobilebert_tf.layers import NoNorm
from mobilebert_tf.layers import quantization
from tests import helpers
from training import run_classifier as rc

TINY = MobileBertConfig(
    vocab_size=60, hidden_size=32, embedding_size=16, num_hidden_layers=2,
    num_attention_heads=2, intermediate_size=32, intra_bottleneck_size=16,
    trigram_input=True, use_bottleneck=True, key_query_shared_bottleneck=True,
    num_feedforward_networks=2, normalization_type="no_norm",
    hidden_act="relu", hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0, max_position_embeddings=32)
QAT = TINY.for_quantization_aware_training()
DATA = os.path.join(os.path.dirname(__file__), "data", "sst_tiny")


def _numpy_fake_quant(x, minimum, maximum, narrow_range=False, bits=8):
  """TensorFlow's FakeQuantWithMinMaxVars: nudge the range to put 0 on a
  level, clamp, round to the nearest level."""
  quant_min, quant_max = (1 if narrow_range else 0), 2**bits - 1
  scale = (maximum - minimum) / (quant_max - quant_min)
  zero_point = np.clip(np.round(quant_min - minimum / scale), quant_min,
                       quant_max)
  low, high = (quant_min - zero_point) * scale, (quant_max - zero_point) * scale
  clamped = np.clip(x, low, high)
  return np.round((clamped - low) / scale) * scale + low


def _batch(rng, batch=4, seq=16, length=12, vocab=60):
  ids = rng.integers(5, vocab, size=(batch, seq)).astype(np.int32)
  ids[:, 0] = 2
  ids[:, length:] = 0
  return dict(input_word_ids=ids, input_mask=np.sign(ids).astype(np.int32),
              input_type_ids=np.zeros_like(ids))


def test_activation_ranges_follow_the_originals_moving_average():
  quantizer = quantization.ActivationQuantizer()
  rng = np.random.default_rng(0)
  minimum, maximum = quantization.INITIAL_RANGE
  for step in range(3):
    x = rng.normal(2.0, 3.0, size=(5, 7)).astype(np.float32)
    if step == 2:
      x = np.abs(x)  # Min above 0: the range is widened to hold 0.
    out = quantizer(tf.constant(x), training=True).numpy()
    decay = quantization.EMA_DECAY
    minimum = minimum * decay + min(x.min(), 0.0) * (1 - decay)
    maximum = maximum * decay + max(x.max(), 0.0) * (1 - decay)
    np.testing.assert_allclose(quantizer.min.numpy(), minimum, rtol=1e-6)
    np.testing.assert_allclose(quantizer.max.numpy(), maximum, rtol=1e-6)
    np.testing.assert_allclose(out, _numpy_fake_quant(x, minimum, maximum),
                               atol=1e-5)
  # Outside training the stored range quantizes and does not move.
  out = quantizer(tf.constant(x * 10), training=False).numpy()
  np.testing.assert_allclose(quantizer.min.numpy(), minimum, rtol=1e-6)
  np.testing.assert_allclose(out, _numpy_fake_quant(x * 10, minimum, maximum),
                             atol=1e-5)


def _replica_main(out_dir):
  """Ranges updated in two replicas, each with half of a batch."""
  cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  halves = [np.full([3], -1.0, np.float32), np.full([3], 4.0, np.float32)]
  halves[1][0] = -3.0
  with strategy.scope():
    quantizer = quantization.ActivationQuantizer()
    quantizer.build([3])
  dataset = strategy.experimental_distribute_values_from_function(
      lambda context: tf.constant(halves[context.replica_id_in_sync_group]))
  strategy.run(tf.function(lambda x: quantizer(x, training=True)),
               args=(dataset,))
  with open(os.path.join(out_dir, "ranges.json"), "w") as f:
    json.dump([strategy.num_replicas_in_sync, float(quantizer.min.numpy()),
               float(quantizer.max.numpy())], f)


def test_replicas_average_their_range_updates(tmp_path):
  helpers.run_test_module("test_quantization", tmp_path)
  with open(tmp_path / "ranges.json") as f:
    replicas, minimum, maximum = json.load(f)
  assert replicas == 2
  decay = quantization.EMA_DECAY
  # Replica 0 sees min -1, max 0 (widened to 0); replica 1 min -3, max 4.
  np.testing.assert_allclose(minimum, -6 * decay + (1 - decay) * -2.0,
                             rtol=1e-6)
  np.testing.assert_allclose(maximum, 6 * decay + (1 - decay) * 2.0, rtol=1e-6)


def test_kernels_quantize_symmetrically_to_127_levels():
  kernel = tf.Variable(np.random.default_rng(1).normal(
      size=(6, 4)).astype(np.float32))
  with tf.GradientTape() as tape:
    quantized = quantization.quantize_kernel(kernel)
    loss = tf.reduce_sum(quantized * 3.0)
  r = np.abs(kernel.numpy()).max()
  expected = np.round(kernel.numpy() * 127 / r) * r / 127
  np.testing.assert_allclose(quantized.numpy(), expected, atol=1e-6)
  # Straight-through: the range is a constant, the gradient passes as is.
  np.testing.assert_allclose(tape.gradient(loss, kernel).numpy(), 3.0)


@pytest.mark.parametrize("changes, message", [
    (dict(normalization_type="layer_norm"), "normalization_type='no_norm'"),
    (dict(hidden_act="gelu"), "hidden_act 'relu' or 'relu6'"),
])
def test_configs_qat_cannot_express_are_refused(changes, message):
  with pytest.raises(ValueError, match=message):
    TINY.replace(**changes).for_quantization_aware_training()


def test_a_qat_config_needs_what_the_original_needs():
  assert (QAT.hidden_act, QAT.attention_mask_rule) == (
      "relu6", "quantization_friendly")
  with pytest.raises(ValueError, match="attention_mask_rule="):
    QAT.replace(attention_mask_rule="exclude")
  with pytest.raises(ValueError, match="hidden_act='relu6'"):
    QAT.replace(hidden_act="relu")
  assert MobileBertConfig.from_dict(QAT.to_dict()) == QAT


def _original_fake_quant_count(num_ffn, kq_shared, bottleneck_attention):
  """FakeQuant ops `modeling.py` puts in one bottleneck block under QAT,
  counting once a tensor it quantizes twice with equal ranges (the block
  input read by several dense layers; query and key of one input; the
  context and the output projection's input)."""
  kq = kq_shared and not bottleneck_attention
  kernels = 1 + kq + 3 + 1 + 2 * num_ffn + 1
  # block input, the attention input bottleneck, each FFN's two inputs, the
  # output bottleneck's input
  dense_inputs = 1 + (kq or bottleneck_attention) + 2 * num_ffn + 1
  no_norms = 1 + kq + 1 + num_ffn + 1  # each: input, gamma, beta, product
  attention = 4  # raw scores, masked scores, shifted scores, context
  return kernels + dense_inputs + 4 * no_norms + attention


@pytest.mark.parametrize("num_ffn, kq_shared, bottleneck_attention", [
    (4, True, False), (2, False, True), (1, False, False)],
    ids=["mobilebert", "tiny", "plain_bottleneck"])
def test_fake_quantization_sits_where_the_original_puts_it(
    num_ffn, kq_shared, bottleneck_attention):
  block = MobileBertTransformer(
      hidden_size=32, intermediate_size=32, intra_bottleneck_size=16,
      num_attention_heads=2, num_feedforward_networks=num_ffn,
      key_query_shared_bottleneck=kq_shared,
      use_bottleneck_attention=bottleneck_attention, intermediate_act_fn="relu6",
      attention_mask_rule="quantization_friendly", use_quantized_training=True)
  graph = tf.function(lambda x, m: block(x, m, training=False)).get_concrete_function(
      tf.TensorSpec([2, 5, 32]), tf.TensorSpec([2, 5], tf.int32)).graph
  ops = collections.Counter(op.type for op in graph.get_operations())
  assert ops["FakeQuantWithMinMaxVars"] == _original_fake_quant_count(
      num_ffn, kq_shared, bottleneck_attention)
  assert ops["FakeQuantWithMinMaxVarsPerChannel"] == 0


def test_the_embeddings_and_pooler_stay_float():
  encoder = build_encoder(QAT.replace(num_hidden_layers=1,
                                      classifier_activation=True))
  assert not [w.name for w in encoder.embedding_layer.weights
              if "quantizer" in w.name]
  assert not [w.name for w in encoder.pooler_layer.weights
              if "quantizer" in w.name]


def test_the_qat_qa_head_quantizes_its_input_and_the_float_one_does_not(
    tmp_path):
  rng = np.random.default_rng(3)
  batch = _batch(rng)
  qat = heads.build_for_question_answering(QAT)
  floating = heads.build_for_question_answering(TINY)
  assert not [w.name for w in floating.weights if "quantizer" in w.name]
  assert "qa_outputs_input_quantizer" not in floating.checkpoint_items
  quantizer = qat.checkpoint_items["qa_outputs_input_quantizer"]
  assert [w.name for w in quantizer.weights] == [
      "qa_outputs_input_quantizer/min:0", "qa_outputs_input_quantizer/max:0"]
  # Calibrated as the blocks' quantizers: to the extremes of its input in
  # calibration, close to the sequence output of the float twin (the same
  # weights; calibration leaves the QAT model's kernels in 8 bits, each
  # weight within 1/254 of its kernel's largest).
  twin = heads.build_for_question_answering(
      QAT.replace(use_quantized_training=False))
  prefix = tf.train.Checkpoint(model=qat).write(str(tmp_path / "qat"))
  tf.train.Checkpoint(model=twin).read(prefix).expect_partial()
  float_sequence = twin.encoder_network(batch)["sequence_output"].numpy()
  assert quantization.calibrate_ranges(qat, [batch]) > 1
  np.testing.assert_allclose(
      [float(quantizer.min), float(quantizer.max)],
      [min(float_sequence.min(), 0.0), max(float_sequence.max(), 0.0)],
      rtol=1e-2)
  # The logits are the float head on the fake-quantized sequence output.
  sequence = qat.encoder_network(batch)["sequence_output"].numpy()
  dense = qat.get_layer("qa_outputs")
  start = qat(batch)["start_logits"].numpy()
  logits = _numpy_fake_quant(sequence, float(quantizer.min),
                             float(quantizer.max)) @ dense.kernel.numpy()
  logits += dense.bias.numpy()
  context = (batch["input_mask"] != 0) & (batch["input_type_ids"] == 1)
  context[:, 0] = True
  np.testing.assert_allclose(start[context], logits[..., 0][context],
                             rtol=1e-5, atol=1e-6)
  # The ranges survive a config round trip (the head is rebuilt alike).
  again = heads.MobileBertForQuestionAnswering.from_config(qat.get_config())
  assert "qa_outputs_input_quantizer" in again.checkpoint_items


def test_training_moves_ranges_towards_the_data_and_float():
  encoder = build_encoder(QAT)
  rng = np.random.default_rng(2)
  inputs = _batch(rng)
  before = {w.name: w.numpy() for w in encoder.non_trainable_weights}
  encoder(inputs, training=True)
  unmoved = [w.name for w in encoder.non_trainable_weights
             if w.numpy() == before[w.name]]
  # Every range moves, except the lower end of the masked scores: padded
  # keys hold exactly -6, where it starts.
  assert len(before) > 0
  assert unmoved == [f"transformer_layer_{i}/attention/shifted_scores_"
                     "quantizer/min:0" for i in range(QAT.num_hidden_layers)]
  # The float twin with the same weights: the rounding error shrinks as the
  # ranges close in on the activations (from [-6, 6], far wider here).
  float_encoder = build_encoder(QAT.replace(use_quantized_training=False))
  float_encoder.set_weights([w.numpy() for w in encoder.weights
                             if "quantizer" not in w.name])
  reference = float_encoder(inputs, training=False)["sequence_output"]

  def cosine_to_float():
    qat = encoder(inputs, training=False)["sequence_output"]
    return float(tf.reduce_sum(qat * reference) / tf.norm(qat) /
                 tf.norm(reference))

  start = cosine_to_float()
  step = tf.function(lambda x: encoder(x, training=True))
  for _ in range(300):
    step(_batch(rng))
  assert cosine_to_float() > start


def test_calibration_sets_each_range_to_its_float_inputs_mean_extremes():
  norm = NoNorm(use_quantized_training=True)
  rng = np.random.default_rng(5)
  batches = [rng.normal(0.5, 2.0, size=(3, 4, 8)).astype(np.float32)
             for _ in range(2)]
  norm(batches[0])
  gamma, beta = np.linspace(-0.5, 2.0, 8), np.linspace(0.1, 0.3, 8)
  norm.gamma.assign(gamma)
  norm.beta.assign(beta)
  assert quantization.calibrate_ranges(norm, batches) == 4

  def mean_extremes(tensors):  # Each batch's min and max, widened to 0.
    return (np.mean([min(t.min(), 0.0) for t in tensors]),
            np.mean([max(t.max(), 0.0) for t in tensors]))

  # The product is of the float input: calibration sees the float layer.
  want = dict(input=mean_extremes(batches), gamma=mean_extremes([gamma]),
              beta=mean_extremes([beta]),
              product=mean_extremes([x * gamma for x in batches]))
  for name, (minimum, maximum) in want.items():
    got = norm.quantizers[name]
    np.testing.assert_allclose([got.min.numpy(), got.max.numpy()],
                               [minimum, maximum], rtol=1e-6, err_msg=name)
  # Afterwards the layer fake-quantizes again, with the calibrated ranges.
  x = batches[1]
  fq = lambda v, name: _numpy_fake_quant(v, *want[name])  # pylint: disable=unnecessary-lambda-assignment
  expected = fq(fq(x, "input") * fq(gamma, "gamma"), "product") + fq(
      beta, "beta")
  np.testing.assert_allclose(norm(x, training=False).numpy(), expected,
                             atol=1e-5)


def test_calibration_brings_a_qat_encoder_closer_to_its_float_twin():
  encoder = build_encoder(QAT)
  rng = np.random.default_rng(6)
  inputs = _batch(rng)
  encoder(inputs)
  float_encoder = build_encoder(QAT.replace(use_quantized_training=False))
  float_encoder.set_weights([w.numpy() for w in encoder.weights
                             if "quantizer" not in w.name])
  reference = float_encoder(inputs, training=False)["sequence_output"]

  def cosine_to_float():
    qat = encoder(inputs, training=False)["sequence_output"]
    return float(tf.reduce_sum(qat * reference) / tf.norm(qat) /
                 tf.norm(reference))

  before = cosine_to_float()
  quantizers = [m for m in encoder.submodules
                if isinstance(m, quantization.ActivationQuantizer)]
  initial = [(q.min.numpy(), q.max.numpy()) for q in quantizers]
  calibrated = quantization.calibrate_ranges(
      encoder, [_batch(rng) for _ in range(3)])
  kept = [q.name for q, ends in zip(quantizers, initial)
          if (q.min.numpy(), q.max.numpy()) == ends]
  # Every range but the offsets' (NoNorm's beta starts at zeros: no range
  # to calibrate).
  assert calibrated == len(quantizers) - len(kept)
  assert kept and all(name == "beta_quantizer" for name in kept)
  assert cosine_to_float() > before


def test_calibration_needs_a_qat_model_batches_and_eager_mode():
  with pytest.raises(ValueError, match="no ActivationQuantizer"):
    quantization.calibrate_ranges(build_encoder(TINY), [_batch(
        np.random.default_rng(0))])
  encoder = build_encoder(QAT)
  with pytest.raises(ValueError, match="at least one batch"):
    quantization.calibrate_ranges(encoder, [])
  batch = _batch(np.random.default_rng(0))
  with pytest.raises(RuntimeError, match="runs eagerly"):
    tf.function(lambda: quantization.calibrate_ranges(encoder, [batch]))()


def test_checkpoints_interchange_between_float_and_qat(tmp_path):
  float_model = build_pretrainer(TINY)
  prefix = tf.train.Checkpoint(**float_model.checkpoint_items).write(
      str(tmp_path / "float"))
  qat_model = build_pretrainer(QAT)
  assert restore.load_checkpoint(qat_model, QAT, prefix) == "tf2"
  values = {w.name: w.numpy() for w in float_model.weights}
  shared = [w for w in qat_model.weights if w.name in values]
  assert len(shared) == len(values)
  for weight in shared:
    np.testing.assert_array_equal(weight.numpy(), values[weight.name])
  # A QAT checkpoint keeps its ranges, and restores into a float model too.
  for w in qat_model.non_trainable_weights:
    w.assign(w + 1.0)
  prefix = tf.train.Checkpoint(**qat_model.checkpoint_items).write(
      str(tmp_path / "qat"))
  again = build_pretrainer(QAT)
  restore.load_checkpoint(again, QAT, prefix)
  for a, b in zip(again.non_trainable_weights, qat_model.non_trainable_weights):
    assert a.numpy() == b.numpy()
  restore.load_checkpoint(build_pretrainer(TINY), TINY, prefix)
  # Other mismatches still fail.
  with pytest.raises(ValueError, match="does not fit"):
    restore.load_checkpoint(build_pretrainer(QAT.replace(
        num_hidden_layers=3)), QAT, prefix)


@pytest.fixture(scope="module")
def qat_tflite():
  """A QAT tiny encoder with trained ranges, converted to full int8."""
  encoder = build_encoder(QAT, validate_inputs=False)
  rng = np.random.default_rng(3)
  # NoNorm parameters as a trained model has them: an all-zero beta (a
  # fresh model's) can make the converter fold `x + 0` away and then fail
  # on the ranges around it (docs/tflite.md).
  for weight in encoder.weights:
    if weight.name.endswith(("/beta:0", "/gamma:0")):
      weight.assign_add(rng.normal(0, 0.1, weight.shape).astype(np.float32))
  step = tf.function(lambda x: encoder(x, training=True)["sequence_output"])
  for _ in range(300):  # Ranges move 26% of the way to the data's.
    step(_batch(rng))
  representative = [{k: v[:1] for k, v in _batch(rng).items()}
                    for _ in range(8)]
  model = tflite_convert.convert_model(
      encoder, tflite_convert.TFLITE_OUTPUTS, "int8", seq_length=16,
      batch_size=1, representative_batches=representative)
  interpreter = Interpreter(model_content=model)
  interpreter.allocate_tensors()
  return encoder, interpreter, rng


def test_qat_tflite_is_full_integer_per_the_int8_specification(qat_tflite):
  _, interpreter, _ = qat_tflite
  tensors = interpreter.get_tensor_details()
  ops = [op for op in _compat.tflite_op_details(interpreter)
         if op["op_name"] != "DELEGATE"]
  heavy = [op for op in ops if op["op_name"] in ("FULLY_CONNECTED",
                                                  "BATCH_MATMUL")]
  assert len(heavy) >= 2 * (1 + 1 + 4 + 2 * 2 + 1 + 2)  # Blocks' matmuls.
  weights = set()
  for op in heavy:
    operands = [tensors[i] for i in list(op["inputs"]) + list(op["outputs"])
                if i >= 0]
    for tensor in operands:
      if tensor["dtype"] == np.int32:  # FULLY_CONNECTED's bias.
        assert tensor["quantization_parameters"]["zero_points"].max() == 0
        continue
      assert tensor["dtype"] == np.int8, (op["op_name"], tensor["name"])
    if op["op_name"] == "FULLY_CONNECTED":
      weights.add(op["inputs"][1])
  for index in weights:
    params = tensors[index]["quantization_parameters"]
    assert (params["zero_points"] == 0).all()  # Symmetric.
    values = interpreter.get_tensor(index)
    assert values.min() >= -127  # Narrow range: -128 is never used.
  # Activations (what ops compute) are quantized per tensor, as the
  # specification requires; only constants may be per channel.
  computed = {i for op in ops for i in op["outputs"]}
  activations = [t for t in tensors
                 if t["dtype"] == np.int8 and t["index"] in computed]
  assert len(activations) > len(heavy)
  assert all(len(t["quantization_parameters"]["scales"]) == 1
             for t in activations)


def test_qat_tflite_computes_what_the_qat_model_computes(qat_tflite):
  encoder, interpreter, rng = qat_tflite
  runner = interpreter.get_signature_runner("serving_default")
  cosines = []
  for _ in range(4):
    inputs = {k: v[:1] for k, v in _batch(rng).items()}
    tflite = runner(**inputs)["sequence_output"][0]
    keras = encoder(inputs, training=False)["sequence_output"].numpy()[0]
    kept = inputs["input_mask"][0] == 1
    a, b = tflite[kept].ravel(), keras[kept].ravel()
    cosines.append(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
  # The integer kernels round where the fake-quantized float graph does not
  # (products, rescaling), and the embeddings are calibrated, not trained.
  assert min(cosines) > 0.99, cosines


def test_classifier_cli_fine_tunes_quantization_aware(tmp_path):
  train = os.path.join(DATA, "dev.tsv")
  from training import tsv  # pylint: disable=g-import-not-at-top
  model = helpers.write_tiny_text_model(
      tmp_path, tsv.read_tsv(train).texts[0], normalization_type="no_norm")
  values = rc.parse_flags([
      "run_classifier", f"--train_file={train}", f"--eval_file={train}",
      f"--bert_config_file={model['config_file']}",
      f"--init_checkpoint={model['checkpoint']}",
      f"--vocab_file={model['vocab_file']}", "--quantization_aware",
      f"--export_path={tmp_path / 'classifier'}", "--epochs=1",
      "--batch_size=32", "--seq_length=32"])
  lines = []
  result = rc.finetune(values, log=lines.append)
  assert result.max_abs_diff <= rc.VERIFY_ATOL
  encoder = result.model.get_layer("classifier").encoder_network
  # The ranges start from the training examples' activations (all 96 of
  # them: fewer than --num_calibration_examples' default 100).
  quantizers = [m for m in encoder.submodules
                if isinstance(m, quantization.ActivationQuantizer)]
  calibrated = [re.fullmatch(r"Calibrated (\d+) quantization ranges on 96 "
                             r"training examples", line) for line in lines]
  calibrated = [int(m.group(1)) for m in calibrated if m]
  assert len(calibrated) == 1 and 0 < calibrated[0] <= len(quantizers)
  ranges = [w for w in encoder.non_trainable_weights if "quantizer" in w.name
            and "shifted_scores_quantizer/min" not in w.name]
  assert ranges and all(abs(w.numpy()) != 6.0 for w in ranges)  # Trained.
  loaded = tf.saved_model.load(result.export_path)
  graph = loaded.signatures["serving_default"].graph.as_graph_def()
  ops = {node.op for function in graph.library.function
         for node in function.node_def}
  assert "FakeQuantWithMinMaxVars" in ops


def test_classifier_cli_refuses_qat_of_a_savedmodel(tmp_path, capsys):
  encoder = tmp_path / "encoder"
  encoder.mkdir()
  code = rc.main(["run_classifier", f"--train_file={DATA}/train.tsv",
                  f"--eval_file={DATA}/dev.tsv", f"--encoder={encoder}",
                  f"--preprocessor={encoder}", "--quantization_aware",
                  f"--export_path={tmp_path / 'out'}"])
  err = capsys.readouterr().err
  assert code == 2 and len(err.strip().splitlines()) == 1, err
  assert "--quantization_aware needs --bert_config_file" in err
  assert not (tmp_path / "out").exists()


def test_classifier_cli_refuses_qat_of_a_layer_norm_model(tmp_path, capsys):
  model = helpers.write_tiny_text_model(tmp_path, ["a b c"])
  code = rc.main([
      "run_classifier", f"--train_file={DATA}/train.tsv",
      f"--eval_file={DATA}/dev.tsv",
      f"--bert_config_file={model['config_file']}",
      f"--init_checkpoint={model['checkpoint']}",
      f"--vocab_file={model['vocab_file']}", "--quantization_aware",
      f"--export_path={tmp_path / 'out'}"])
  err = capsys.readouterr().err
  assert code == 2 and len(err.strip().splitlines()) == 1, err
  assert "--quantization_aware: Quantization-aware training needs " \
         "normalization_type='no_norm'" in err
  assert not (tmp_path / "out").exists()


def test_a_qat_export_converts_to_full_int8_through_the_cli(tmp_path, capsys):
  # pylint: disable=g-import-not-at-top
  from export import encoder_savedmodel
  from export import preprocessor_savedmodel
  from export import to_tflite
  from training import tsv
  # pylint: enable=g-import-not-at-top
  sentences = tsv.read_tsv(os.path.join(DATA, "dev.tsv")).texts[0]
  model = helpers.write_tiny_text_model(tmp_path, sentences,
                                        normalization_type="no_norm")
  config = MobileBertConfig.from_json_file(
      model["config_file"]).for_quantization_aware_training()
  pretrainer = build_pretrainer(config)
  restore.load_checkpoint(pretrainer, config, model["checkpoint"])
  rng = np.random.default_rng(4)
  encoder = pretrainer.encoder_network
  for weight in encoder.weights:  # Trained NoNorm offsets (see qat_tflite).
    if weight.name.endswith(("/beta:0", "/gamma:0")):
      weight.assign_add(rng.normal(0, 0.1, weight.shape).astype(np.float32))
  step = tf.function(lambda x: encoder(x, training=True)["sequence_output"])
  for _ in range(100):
    step(_batch(rng, seq=32, length=20, vocab=config.vocab_size))
  encoder_savedmodel.export_encoder(pretrainer, model["vocab_file"], True,
                                    str(tmp_path / "encoder"), config=config)
  preprocessor_savedmodel.export_preprocessor(
      model["vocab_file"], True, str(tmp_path / "preprocessor"), seq_length=32)
  (tmp_path / "texts.txt").write_text("\n".join(sentences))
  output = tmp_path / "model.tflite"
  # The generic full-int8 bar (cosine 0.999) is for trained models; this
  # random one is held to what 8-bit rounding of its ~40 quantized tensors
  # allows.
  code = to_tflite.main([
      "to_tflite", f"--saved_model_dir={tmp_path / 'encoder'}",
      f"--output={output}", "--quantization=int8", "--seq_length=32",
      f"--representative_text={tmp_path / 'texts.txt'}",
      "--min_cosine=0.99", "--max_relative_error=0.2"])
  assert code == 0, capsys.readouterr().err
  interpreter = Interpreter(model_path=str(output))
  tensors = interpreter.get_tensor_details()
  fully_connected = [
      op for op in _compat.tflite_op_details(interpreter)
      if op["op_name"] == "FULLY_CONNECTED"]
  assert fully_connected and all(
      tensors[op["inputs"][0]]["dtype"] == np.int8 for op in fully_connected)


if __name__ == "__main__":
  _replica_main(sys.argv[1])
