"""Task heads: shapes, masking, dropout, serialization, pretrained restore,
numbers equal to transformers' heads, and learning small tasks."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from checkpoints import tf1_io
from tests.helpers import transformers_config
from mobilebert_tf import MobileBertConfig
from mobilebert_tf import build_pretrainer
from mobilebert_tf import heads
from mobilebert_tf import losses
from mobilebert_tf import qa
from tests import tf1_reference
from tests.tf1_reference import relative_error

TOLERANCE = 1e-5
# Seed of the learning tests; HEADS_SEED=n checks robustness to it.
SEED = int(os.environ.get("HEADS_SEED", 0))

# Small, fast, and able to learn from scratch: LayerNorm, no dropout, and a
# wider initialization than 0.02, which makes escaping the initial plateau
# reliable (sequence classification: 8 of 8 seeds instead of 6 of 8).
TRAIN_CONFIG = dict(
    vocab_size=64, hidden_size=32, embedding_size=16, num_hidden_layers=2,
    num_attention_heads=4, intermediate_size=32, intra_bottleneck_size=16,
    trigram_input=True, use_bottleneck=True, key_query_shared_bottleneck=True,
    num_feedforward_networks=2, normalization_type="layer_norm",
    hidden_act="relu", max_position_embeddings=32, type_vocab_size=2,
    classifier_activation=True, hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0, initializer_range=0.1)

FINE_TUNING_HEADS = ("sequence_classification", "regression",
                     "token_classification", "question_answering",
                     "multiple_choice")
ALL_HEADS = FINE_TUNING_HEADS + ("next_sentence_prediction", "masked_lm")


def _config(**changes):
  return MobileBertConfig.from_dict(dict(TRAIN_CONFIG, **changes))


def _build(head, config, **kwargs):
  """A head model for `config` by short name."""
  if head == "sequence_classification":
    return heads.build_for_sequence_classification(config, 3, **kwargs)
  if head == "regression":
    return heads.build_for_sequence_classification(config, 1, **kwargs)
  if head == "token_classification":
    return heads.build_for_token_classification(config, 5, **kwargs)
  if head == "question_answering":
    return heads.build_for_question_answering(config, **kwargs)
  if head == "multiple_choice":
    return heads.build_for_multiple_choice(config, **kwargs)
  if head == "next_sentence_prediction":
    return heads.build_for_next_sentence_prediction(config, **kwargs)
  return heads.build_for_masked_lm(config, **kwargs)


def _inputs(head, batch=3, seq=8, seed=0, vocab_size=64, num_choices=3,
            full_row=True):
  """Inputs with padding and both token types (choices for multiple choice)."""
  rng = np.random.default_rng(seed)
  rows = batch * (num_choices if head == "multiple_choice" else 1)
  ids = rng.integers(5, vocab_size, size=(rows, seq)).astype(np.int32)
  lengths = rng.integers(4, seq, size=rows)
  if full_row:
    lengths[0] = seq
  mask = (np.arange(seq)[None] < lengths[:, None]).astype(np.int32)
  ids *= mask
  types = ((np.arange(seq)[None] >= 3) * mask).astype(np.int32)
  inputs = dict(input_word_ids=ids, input_mask=mask, input_type_ids=types)
  if head == "multiple_choice":
    inputs = {k: v.reshape(batch, num_choices, seq) for k, v in inputs.items()}
  if head == "masked_lm":
    inputs["masked_lm_positions"] = np.stack(
        [rng.choice(3, 2, replace=False) + 1 for _ in range(batch)]).astype(
            np.int32)
  return inputs


def _expected_shapes(head, batch=3, seq=8):
  return {
      "sequence_classification": (batch, 3),
      "regression": (batch, 1),
      "token_classification": (batch, seq, 5),
      "question_answering": dict(start_logits=(batch, seq),
                                 end_logits=(batch, seq)),
      "multiple_choice": (batch, 3),
      "next_sentence_prediction": (batch, 2),
      "masked_lm": (batch, 2, 64),
  }[head]


def _numpy(outputs):
  return tf.nest.map_structure(lambda t: np.asarray(t), outputs)


# === Shapes, dtypes, masking, dropout ===


@pytest.mark.parametrize("head", ALL_HEADS)
def test_output_shapes_and_dtypes(head):
  model = _build(head, _config())
  outputs = model(_inputs(head))
  shapes = tf.nest.map_structure(lambda t: tuple(t.shape), outputs)
  assert shapes == _expected_shapes(head)
  for tensor in tf.nest.flatten(outputs):
    assert tensor.dtype == tf.float32
    assert np.isfinite(tensor.numpy()).all()
  assert "encoder" in model.checkpoint_items
  assert model.checkpoint_items["encoder"] is model.encoder_network


@pytest.mark.parametrize("head", ALL_HEADS)
def test_padding_does_not_change_outputs(head):
  """Appending padding leaves every real position's output unchanged.

  Every row already ends in padding: with `trigram_input` the last real
  token's embedding includes its right neighbour, zeros past the end but the
  [PAD] embedding before padding (as in the original).
  """
  model = _build(head, _config())
  inputs = _inputs(head, full_row=False)
  padded = {k: np.concatenate([v, np.zeros(v.shape[:-1] + (4,), v.dtype)],
                              axis=-1) if k != "masked_lm_positions" else v
            for k, v in inputs.items()}
  short, long = _numpy(model(inputs)), _numpy(model(padded))
  if head == "token_classification":  # Padding positions may differ.
    real = inputs["input_mask"] == 1
    short, long = short[real], long[:, :8][real]
  if head == "question_answering":
    long = {k: v[:, :8] for k, v in long.items()}
  tf.nest.map_structure(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5),
      short, long)


def test_question_answering_masks_outside_the_context():
  config = _config()
  model = heads.build_for_question_answering(config)
  unmasked = heads.MobileBertForQuestionAnswering(
      model.encoder_network, mask_outside_context=False)
  unmasked.qa_outputs.set_weights(model.qa_outputs.get_weights())
  inputs = _inputs("question_answering")
  out, raw = _numpy(model(inputs)), _numpy(unmasked(inputs))
  context = (inputs["input_mask"] == 1) & (inputs["input_type_ids"] == 1)
  keep = context.copy()
  keep[:, 0] = True  # [CLS]: the "no answer" position.
  for key in ("start_logits", "end_logits"):
    assert (out[key][~keep] == heads.MASKED_LOGIT).all()
    np.testing.assert_array_equal(out[key][keep], raw[key][keep])
    assert (raw[key] > -1e3).all()
  # Question tokens (type 0 after [CLS]) and padding are both masked.
  assert (~keep[:, 1:3]).all() and (~keep[inputs["input_mask"] == 0]).all()
  # masked_logit=None (the TFLite models'): one below each row's lowest
  # logit, so the same tokens rank last; the config keeps the choice.
  low = heads.MobileBertForQuestionAnswering(
      model.encoder_network, masked_logit=None)
  low.qa_outputs.set_weights(model.qa_outputs.get_weights())
  out_low = _numpy(low(inputs))
  for key in ("start_logits", "end_logits"):
    np.testing.assert_array_equal(out_low[key][keep], raw[key][keep])
    lowest = raw[key].min(axis=1, keepdims=True) - 1.0
    np.testing.assert_allclose(
        out_low[key][~keep], np.broadcast_to(lowest, raw[key].shape)[~keep],
        rtol=1e-6)
    np.testing.assert_array_equal(np.argsort(-out_low[key], kind="stable"),
                                  np.argsort(-out[key], kind="stable"))
  again = heads.MobileBertForQuestionAnswering.from_config(low.get_config())
  assert again.get_layer("start_logits").masked_logit is None


@pytest.mark.parametrize("head", FINE_TUNING_HEADS)
def test_classifier_dropout(head):
  # The config's hidden_dropout_prob is the fallback.
  model = _build(head, _config(hidden_dropout_prob=0.3))
  assert model.get_layer("classifier_dropout").rate == pytest.approx(0.3)
  assert model.encoder_network.get_config()["hidden_dropout_prob"] == 0.3
  # An explicit rate wins; dropout only with training=True.
  model = _build(head, _config(), classifier_dropout=0.5)
  assert model.get_layer("classifier_dropout").rate == 0.5
  inputs = _inputs(head)
  inference = _numpy(model(inputs, training=False))
  tf.nest.map_structure(np.testing.assert_array_equal, inference,
                        _numpy(model(inputs)))
  training = _numpy(model(inputs, training=True))
  assert any(not np.array_equal(a, b) for a, b in zip(
      tf.nest.flatten(inference), tf.nest.flatten(training)))
  no_dropout = _build(head, _config(), classifier_dropout=0.0)
  # Equal up to float32 rounding: inference runs each block as two chains,
  # a training step as one (the same math).
  tf.nest.map_structure(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
      _numpy(no_dropout(inputs, training=True)),
      _numpy(no_dropout(inputs, training=False)))


def test_bad_arguments_raise():
  encoder = heads.build_for_sequence_classification(_config(),
                                                    2).encoder_network
  with pytest.raises(ValueError, match="num_classes"):
    heads.MobileBertForSequenceClassification(encoder, 0)
  with pytest.raises(ValueError, match="classifier_dropout"):
    heads.MobileBertForTokenClassification(encoder, 2, classifier_dropout=1.0)
  with pytest.raises(TypeError, match="encoder_network"):
    heads.MobileBertForQuestionAnswering("encoder")
  with pytest.raises(TypeError, match="MobileBertConfig"):
    heads.build_for_multiple_choice(TRAIN_CONFIG)


# === Serialization ===


@pytest.mark.parametrize("head", ALL_HEADS)
def test_serialization_round_trip(head):
  model = _build(head, _config(), **(
      {} if head in ("next_sentence_prediction", "masked_lm") else
      dict(classifier_dropout=0.2)))
  config = json.loads(json.dumps(model.get_config()))
  assert config["encoder_network"]["config"]["num_blocks"] == 2
  restored = type(model).from_config(config)
  assert json.loads(json.dumps(restored.get_config())) == config
  assert len(restored.weights) == len(model.weights)
  restored.set_weights(model.get_weights())
  inputs = _inputs(head)
  tf.nest.map_structure(np.testing.assert_array_equal, _numpy(model(inputs)),
                        _numpy(restored(inputs)))
  # The registered name ("MobileBertTF>...") deserializes without
  # custom_objects.
  again = tf_keras.layers.deserialize(
      json.loads(json.dumps(tf_keras.layers.serialize(model))))
  assert type(again) is type(model)


# === Pretrained checkpoint ===


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
  """A pretrainer (with NSP) with random weights, saved as a TF2 checkpoint."""
  config = _config()
  pretrainer = build_pretrainer(config, with_nsp=True)
  variables = tf1_reference.random_tf1_variables(config.to_dict(), seed=3)
  tf1_io.assign_tf1_variables(pretrainer, config, variables)
  path = tf.train.Checkpoint(**pretrainer.checkpoint_items).write(
      str(tmp_path_factory.mktemp("pretrained") / "ckpt"))
  return config, pretrainer, path


@pytest.mark.parametrize("head", ALL_HEADS)
def test_encoder_restores_from_pretrainer_checkpoint(pretrained, head):
  config, pretrainer, path = pretrained
  model = _build(head, config)
  own = {k: v for k, v in model.checkpoint_items.items() if k != "encoder"}
  before = {k: [w.numpy() for w in v.weights] for k, v in own.items()}
  tf.train.Checkpoint(encoder=model.encoder_network).read(
      path).assert_existing_objects_matched().expect_partial()
  for mine, theirs in zip(model.encoder_network.weights,
                          pretrainer.encoder_network.weights):
    np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
  for key, values in before.items():  # The head stays freshly initialised.
    for weight, value in zip(own[key].weights, values):
      if "embedding" not in weight.name:  # MLM: the tied table is restored.
        np.testing.assert_array_equal(weight.numpy(), value)
  if head in ("next_sentence_prediction", "masked_lm"):
    # The pretraining heads restore fully under their pretrainer keys.
    tf.train.Checkpoint(**model.checkpoint_items).read(
        path).assert_existing_objects_matched()
    inputs = _inputs(head)
    key = "next_sentence" if head == "next_sentence_prediction" else (
        "mlm_logits")
    expected = pretrainer(inputs)[key]
    np.testing.assert_allclose(model(inputs), expected, rtol=1e-6, atol=1e-6)


# === Numbers equal transformers' heads ===

_TRANSFORMERS_CLASSES = {
    "sequence_classification": "MobileBertForSequenceClassification",
    "regression": "MobileBertForSequenceClassification",
    "token_classification": "MobileBertForTokenClassification",
    "question_answering": "MobileBertForQuestionAnswering",
    "multiple_choice": "MobileBertForMultipleChoice",
    "next_sentence_prediction": "MobileBertForNextSentencePrediction",
    "masked_lm": "MobileBertForMaskedLM",
}
_NUM_LABELS = {"sequence_classification": 3, "regression": 1,
               "token_classification": 5, "question_answering": 2}


@pytest.fixture(scope="module", params=["opt", "opt_pooler"])
def peer_setup(request, tmp_path_factory):
  """Our pretrainer with random weights, and its TF2 checkpoint."""
  config = MobileBertConfig.from_dict(
      tf1_reference.TEST_CONFIGS[request.param])
  pretrainer = build_pretrainer(config, with_nsp=True)
  tf1_io.assign_tf1_variables(pretrainer, config,
                              tf1_reference.random_tf1_variables(
                                  config.to_dict(), seed=7))
  directory = tmp_path_factory.mktemp(request.param)
  tf2_path = tf.train.Checkpoint(**pretrainer.checkpoint_items).write(
      str(directory / "tf2"))
  return config, pretrainer, tf2_path


def _tf1_checkpoint_for(head, pretrainer, config, directory):
  """Our pretrainer as an original TF1 checkpoint that `head` can load.

  transformers' loader raises AttributeError on variables its model lacks
  (its "skip" skips one name component only): the fine-tuning heads get the
  encoder only, the pretraining heads their own `cls/` scope too; the models
  built with `add_pooling_layer=False` get no `bert/pooler`.
  """
  scope = {"next_sentence_prediction": "cls/seq_relationship/",
           "masked_lm": "cls/predictions/"}.get(head, "bert/")
  no_pooler = head in ("token_classification", "question_answering",
                       "masked_lm")
  variables = tf1_io.pretrainer_to_tf1_variables(pretrainer, config)
  kept = {k: v for k, v in variables.items()
          if k.startswith(("bert/", scope)) and not (
              no_pooler and k.startswith("bert/pooler/"))}
  return tf1_io.write_tf1_checkpoint(kept, str(directory / "model.ckpt"))


def _transformers_model(head, config, tf1_prefix):
  import torch
  import transformers
  from transformers.models.mobilebert import modeling_mobilebert

  hf_config = transformers_config(
      config, true_hidden_size=config.true_hidden_size,
      num_labels=_NUM_LABELS.get(head, 2))
  model = getattr(transformers, _TRANSFORMERS_CLASSES[head])(hf_config)
  with torch.no_grad():
    for parameter in model.parameters():
      parameter.fill_(float("nan"))
  modeling_mobilebert.load_tf_weights_in_mobilebert(model, hf_config,
                                                    tf1_prefix)
  for module in model.modules():
    if isinstance(module, torch.nn.LayerNorm):  # transformers' 1e-5 slips.
      module.eps = 1e-12
  return model.eval().double()


def _copy_dense(keras_dense, torch_linear):
  import torch
  kernel, bias = (w.numpy() for w in keras_dense.weights)
  with torch.no_grad():
    torch_linear.weight.copy_(torch.from_numpy(kernel.T.astype(np.float64)))
    torch_linear.bias.copy_(torch.from_numpy(bias.astype(np.float64)))


def _randomize(layer, seed):
  rng = np.random.default_rng(seed)
  for weight in layer.weights:
    weight.assign(rng.normal(0, 0.3, weight.shape).astype(np.float32))


@pytest.mark.parametrize("head", ALL_HEADS)
def test_equals_transformers(peer_setup, head, tmp_path):
  import torch

  config, pretrainer, tf2_path = peer_setup
  tf1_prefix = _tf1_checkpoint_for(head, pretrainer, config, tmp_path)
  model = _build(head, config)
  items = (model.checkpoint_items
           if head in ("next_sentence_prediction", "masked_lm") else
           dict(encoder=model.encoder_network))
  tf.train.Checkpoint(**items).read(
      tf2_path).assert_existing_objects_matched().expect_partial()
  peer = _transformers_model(head, config, tf1_prefix)
  if head == "question_answering":
    _randomize(model.qa_outputs, 1)
    _copy_dense(model.qa_outputs, peer.qa_outputs)
  elif head in FINE_TUNING_HEADS:
    _randomize(model.classifier, 1)
    _copy_dense(model.classifier, peer.classifier)
  still_nan = [n for n, p in peer.named_parameters() if torch.isnan(p).any()]
  assert not still_nan, f"not loaded into transformers: {still_nan[:5]}"

  ref_inputs = tf1_reference.make_inputs(
      config.to_dict(), batch=6 if head == "multiple_choice" else 3, seq=12,
      seed=2)
  inputs = dict(input_word_ids=ref_inputs["input_ids"],
                input_mask=ref_inputs["input_mask"],
                input_type_ids=ref_inputs["token_type_ids"])
  if head == "multiple_choice":
    inputs = {k: v.reshape(2, 3, 12) for k, v in inputs.items()}
  if head == "masked_lm":
    inputs["masked_lm_positions"] = ref_inputs["masked_lm_positions"]
  torch_inputs = dict(
      input_ids=torch.tensor(inputs["input_word_ids"], dtype=torch.long),
      attention_mask=torch.tensor(inputs["input_mask"], dtype=torch.long),
      token_type_ids=torch.tensor(inputs["input_type_ids"], dtype=torch.long))
  with torch.no_grad():
    theirs = peer(**torch_inputs)
  ours = _numpy(model(inputs))
  if head == "question_answering":
    keep = np.asarray(ours["start_logits"]) != heads.MASKED_LOGIT
    assert keep[:, 0].all() and keep.sum() > keep.shape[0]
    for key in ("start_logits", "end_logits"):
      peer_logits = getattr(theirs, key).numpy()
      error = relative_error(ours[key][keep], peer_logits[keep])
      print(f"{head} {key}: relative error {error:.1e}")
      assert error <= TOLERANCE
    return
  peer_logits = theirs.logits.numpy()
  if head == "masked_lm":  # transformers predicts every position.
    peer_logits = np.take_along_axis(
        peer_logits, inputs["masked_lm_positions"][..., None], axis=1)
  assert ours.shape == peer_logits.shape
  error = relative_error(ours, peer_logits)
  print(f"{head}: relative error {error:.1e}")
  assert error <= TOLERANCE


# === Learning small tasks ===


def _fit(model, x, y, epochs, batch_size=32, learning_rate=3e-3, **compile_kw):
  model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate),
                **compile_kw)
  model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)


def _split(arrays, n_train):
  return (tf.nest.map_structure(lambda a: a[:n_train], arrays),
          tf.nest.map_structure(lambda a: a[n_train:], arrays))


def _sentences():
  """Real sentences (the bundled SST-like data), word ids, and labels."""
  path = os.path.join(os.path.dirname(__file__), "data", "sst_tiny")
  rows = []
  for name in ("train.tsv", "dev.tsv"):
    with open(os.path.join(path, name), encoding="utf-8") as f:
      rows += [line.rstrip("\n").split("\t") for line in f][1:]
  return [r[0] for r in rows], np.array([int(r[1]) for r in rows])


@pytest.mark.slow  # a learning test
def test_sequence_classification_learns_sentence_sentiment():
  tf_keras.utils.set_random_seed(SEED)
  sentences, labels = _sentences()
  words = sorted({w for s in sentences for w in s.split()})
  index = {w: i + 5 for i, w in enumerate(words)}  # 0..4: special tokens.
  seq = 16
  ids = np.zeros((len(sentences), seq), np.int32)
  for row, sentence in enumerate(sentences):
    tokens = [2] + [index[w] for w in sentence.split()][:seq - 2] + [3]
    ids[row, :len(tokens)] = tokens
  x = dict(input_word_ids=ids, input_mask=(ids > 0).astype(np.int32),
           input_type_ids=np.zeros_like(ids))
  config = _config(vocab_size=len(words) + 5)
  model = heads.build_for_sequence_classification(config, 2)
  (train_x, test_x), (train_y, test_y) = _split(x, 320), _split(labels, 320)
  _fit(model, train_x, train_y, epochs=12, batch_size=16,
       loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  accuracy = np.mean(np.argmax(model.predict(test_x, verbose=0), -1) == test_y)
  print(f"accuracy {accuracy:.3f}")
  assert accuracy >= 0.85, accuracy  # Chance: 0.5.


MARK = 4  # The marker token: the word after it is "marked".


def _marked_sequences(n, seq, rng, vocab_size=64):
  """Random words (ids 5..) with a marker at a random position; padding."""
  ids = rng.integers(5, vocab_size, size=(n, seq)).astype(np.int32)
  lengths = rng.integers(seq - 4, seq + 1, size=n)
  marks = np.array([rng.integers(1, length - 3) for length in lengths])
  ids[np.arange(n), marks] = MARK
  ids[:, 0] = 2
  ids[np.arange(seq)[None] >= lengths[:, None]] = 0
  return ids, marks


@pytest.mark.slow  # a learning test
def test_token_classification_tags_the_marked_word():
  tf_keras.utils.set_random_seed(SEED)
  rng = np.random.default_rng(0)
  ids, marks = _marked_sequences(800, 12, rng)
  mask = (ids > 0).astype(np.int32)
  labels = np.where(mask == 1, 0, losses.IGNORE_INDEX).astype(np.int32)
  labels[np.arange(len(ids)), marks + 1] = 1  # The marked word.
  x = dict(input_word_ids=ids, input_mask=mask,
           input_type_ids=np.zeros_like(ids))
  model = heads.build_for_token_classification(_config(), 2)
  (train_x, test_x), (train_y, test_y) = _split(x, 600), _split(labels, 600)
  _fit(model, train_x, train_y, epochs=5,
       loss=losses.MaskedSparseCategoricalCrossentropy(),
       metrics=[losses.MaskedSparseCategoricalAccuracy()])
  logits = model.predict(test_x, verbose=0)
  # Which token is tagged most surely: the marked word?
  tagged = np.argmax(np.where(test_x["input_mask"] == 1,
                              logits[..., 1] - logits[..., 0], -np.inf), -1)
  hit_rate = np.mean(tagged == marks[600:] + 1)
  print(f"hit_rate {hit_rate:.3f}")
  assert hit_rate >= 0.8, hit_rate  # Chance: about 1 / 10.


@pytest.mark.slow  # a learning test
def test_question_answering_finds_the_span_of_the_marked_word():
  """Question: 2 words; context: random words with a marked 2-word answer."""
  tf_keras.utils.set_random_seed(SEED)
  rng = np.random.default_rng(1)
  n, seq = 800, 14
  # [CLS] q q [SEP] context (9 words with padding) + room for the last [SEP].
  context, marks = _marked_sequences(n, seq - 4, rng)
  ids = np.concatenate([np.full((n, 1), 2), rng.integers(5, 64, (n, 2)),
                        np.full((n, 1), 3), context[:, 1:],
                        np.zeros((n, 1), np.int64)], 1).astype(np.int32)
  marks = marks + 3  # Positions in the packed input.
  lengths = (ids > 0).sum(1)
  ids[np.arange(n), lengths] = 3  # Final [SEP] (room: context is padded).
  mask = (ids > 0).astype(np.int32)
  types = (np.arange(seq)[None] >= 4) * mask
  x = dict(input_word_ids=ids, input_mask=mask,
           input_type_ids=types.astype(np.int32))
  y = dict(start_logits=(marks + 1).astype(np.int32),
           end_logits=(marks + 2).astype(np.int32))
  model = heads.build_for_question_answering(_config())
  (train_x, test_x), (train_y, test_y) = _split(x, 600), _split(y, 600)
  _fit(model, train_x, train_y, epochs=6, **losses.span_loss_compile_kwargs())
  out = model.predict(test_x, verbose=0)
  spans = qa.best_spans(out["start_logits"], out["end_logits"],
                        qa.context_mask(test_x["input_mask"],
                                        test_x["input_type_ids"]),
                        n_best_size=5, max_answer_length=4)
  exact = np.mean([s[0].start == a and s[0].end == b for s, a, b in zip(
      spans, test_y["start_logits"], test_y["end_logits"])])
  print(f"exact {exact:.3f}")
  assert exact >= 0.7, exact  # Chance: about 1 / 30.


@pytest.mark.slow  # a learning test
def test_multiple_choice_picks_the_choice_with_the_key_word():
  tf_keras.utils.set_random_seed(SEED)
  rng = np.random.default_rng(2)
  n, choices, seq = 600, 3, 8
  ids = rng.integers(5, 64, size=(n, choices, seq)).astype(np.int32)
  ids[:, :, 0] = 2
  answer = rng.integers(0, choices, size=n)
  ids[np.arange(n), answer, rng.integers(1, seq, size=n)] = MARK
  x = dict(input_word_ids=ids, input_mask=np.ones_like(ids),
           input_type_ids=np.zeros_like(ids))
  model = heads.build_for_multiple_choice(_config())
  (train_x, test_x), (train_y, test_y) = _split(x, 450), _split(answer, 450)
  _fit(model, train_x, train_y, epochs=5,
       loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  accuracy = np.mean(np.argmax(model.predict(test_x, verbose=0), -1) == test_y)
  print(f"accuracy {accuracy:.3f}")
  assert accuracy >= 0.8, accuracy  # Chance: 1 / 3.


@pytest.mark.slow  # a learning test
def test_next_sentence_prediction_tells_continuations_from_random_text():
  """As in BERT's data: B continues A's document (label 0) or is drawn from
  another document (1). Documents have topics (word ranges): A's document is
  topic 0 or 1, the other documents' topic 2. (A test of the head, so the
  property is easy: telling A's topic from B's, an XOR, takes a tiny model
  from scratch some 20 epochs.)"""
  tf_keras.utils.set_random_seed(SEED)
  rng = np.random.default_rng(3)
  n, half = 800, 5
  topic_a = rng.integers(0, 2, n)
  labels = rng.integers(0, 2, n).astype(np.int32)
  topic_b = np.where(labels == 0, topic_a, 2)
  words = lambda topic: rng.integers(5, 24, half) + 19 * topic
  ids = np.array([[2, *words(a), 3, *words(b), 3]
                  for a, b in zip(topic_a, topic_b)], np.int32)
  types = np.zeros_like(ids)
  types[:, half + 2:] = 1
  x = dict(input_word_ids=ids, input_mask=np.ones_like(ids),
           input_type_ids=types)
  model = heads.build_for_next_sentence_prediction(_config())
  (train_x, test_x), (train_y, test_y) = _split(x, 600), _split(labels, 600)
  _fit(model, train_x, train_y, epochs=4,
       loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  accuracy = np.mean(np.argmax(model.predict(test_x, verbose=0), -1) == test_y)
  print(f"accuracy {accuracy:.3f}")
  assert accuracy >= 0.8, accuracy  # Chance: 0.5.


@pytest.mark.slow  # a learning test
def test_masked_lm_learns_to_continue_a_counting_sequence():
  """Sequences count up (t, t+1, ...); the masked number follows."""
  tf_keras.utils.set_random_seed(SEED)
  rng = np.random.default_rng(4)
  n, seq = 800, 10
  start = rng.integers(5, 64 - seq, size=n)
  ids = (start[:, None] + np.arange(seq)[None]).astype(np.int32)
  positions = rng.integers(1, seq - 1, size=(n, 1)).astype(np.int32)
  targets = np.take_along_axis(ids, positions, 1)
  np.put_along_axis(ids, positions, 4, 1)  # [MASK]
  x = dict(input_word_ids=ids, input_mask=np.ones_like(ids),
           input_type_ids=np.zeros_like(ids), masked_lm_positions=positions)
  model = heads.build_for_masked_lm(_config())
  (train_x, test_x), (train_y, test_y) = _split(x, 600), _split(targets, 600)
  _fit(model, train_x, train_y, epochs=7,
       loss=losses.MaskedSparseCategoricalCrossentropy())
  predicted = np.argmax(model.predict(test_x, verbose=0), -1)
  accuracy = np.mean(predicted == test_y)
  print(f"accuracy {accuracy:.3f}")
  assert accuracy >= 0.7, accuracy  # Chance: 1 / 64.
