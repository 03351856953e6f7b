"""Numerics equal the original TF1 MobileBERT, by three independent readers.

For each variant the tests fill the original TF1 variables with random values
and compare our outputs with (1) a NumPy float64 re-implementation of the
original (`tests/tf1_reference.py`), (2) tf-models-official's MobileBERT and
(3) transformers' PyTorch MobileBERT, each loading the same weights. Where a
peer cannot express a variant it is left out for it (see `PEERS`).
"""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
import torch
import transformers
from official.projects.mobilebert import model_utils as tfm_model_utils
from transformers.models.mobilebert import modeling_mobilebert

from checkpoints import tf1_io
from mobilebert_tf import MobileBertConfig
from mobilebert_tf import build_pretrainer
from tests.helpers import transformers_config
from tests import tf1_reference
from tests.tf1_reference import relative_error

# tf-models-official 2.20.0's model_utils uses tf_keras without importing it.
tfm_model_utils.tf_keras = tf_keras

TOLERANCE = 1e-5

# Peer limits: tf-models-official cannot express trigram_input=False or
# use_bottleneck=False (plain); transformers cannot express the teacher (its
# query/key expect bottleneck-wide inputs where the original feeds the hidden
# state when intra_bottleneck_size != hidden_size).
PEERS = {
    "opt": ("tfm", "transformers"),
    "opt_pooler": ("tfm", "transformers"),
    "tiny": ("tfm", "transformers"),
    "teacher": ("tfm",),
    "plain": ("transformers",),
}


def _setup(variant, seed=0, **overrides):
  """(config, TF1 variables, inputs, NumPy reference outputs, our pretrainer).

  Args:
    variant: a key of `tf1_reference.TEST_CONFIGS`.
    seed: int. Seed of the weights and inputs.
    **overrides: config keys to set (`attention_mask_rule`) and, with the
      prefix `encoder_`, `build_pretrainer` arguments (`encoder_attention_
      layout`).
  """
  encoder_args = {k[len("encoder_"):]: v for k, v in overrides.items()
                  if k.startswith("encoder_")}
  config_dict = dict(tf1_reference.TEST_CONFIGS[variant])
  config_dict.update({k: v for k, v in overrides.items()
                      if not k.startswith("encoder_")})
  config = MobileBertConfig.from_dict(config_dict)
  variables = tf1_reference.random_tf1_variables(config_dict, seed=seed)
  inputs = tf1_reference.make_inputs(config_dict, seed=seed)
  reference = tf1_reference.reference_forward(variables, config_dict, **inputs)
  pretrainer = build_pretrainer(config, with_nsp=True, **encoder_args)
  tf1_io.assign_tf1_variables(pretrainer, config, variables)
  model_inputs = dict(input_word_ids=inputs["input_ids"],
                      input_mask=inputs["input_mask"],
                      input_type_ids=inputs["token_type_ids"],
                      masked_lm_positions=inputs["masked_lm_positions"])
  return config, variables, model_inputs, reference, pretrainer


@pytest.mark.parametrize("variant", sorted(PEERS))
def test_equals_numpy_reference_of_the_original(variant):
  _, _, inputs, reference, pretrainer = _setup(variant)
  outputs = pretrainer(inputs)
  assert relative_error(outputs["embedding_output"],
                        reference["embedding_output"]) <= TOLERANCE
  assert len(outputs["encoder_outputs"]) == len(reference["encoder_outputs"])
  for ours, ref in zip(outputs["encoder_outputs"],
                       reference["encoder_outputs"]):
    assert relative_error(ours, ref) <= TOLERANCE
  for key, ref_key in (("sequence_output", "sequence_output"),
                       ("pooled_output", "pooled_output"),
                       ("mlm_logits", "mlm_logits"),
                       ("next_sentence", "nsp_logits")):
    error = relative_error(outputs[key], reference[ref_key])
    assert error <= TOLERANCE, (key, error)


def _tfm_pretrainer(config, checkpoint_path):
  pretrainer = tfm_model_utils.create_mobilebert_pretrainer(
      tfm_model_utils.BertConfig.from_dict(config.to_dict()))
  status = tf.train.Checkpoint(**pretrainer.checkpoint_items).restore(
      checkpoint_path)
  status.assert_existing_objects_matched()
  return pretrainer


@pytest.mark.parametrize(
    "variant", [v for v, peers in sorted(PEERS.items()) if "tfm" in peers])
def test_equals_tf_models_official(variant, tmp_path):
  config, _, inputs, _, pretrainer = _setup(variant)
  path = tf.train.Checkpoint(**pretrainer.checkpoint_items).save(
      str(tmp_path / "ckpt"))
  theirs = _tfm_pretrainer(config, path)(inputs)
  ours = pretrainer(inputs)
  for key in ("sequence_output", "pooled_output", "mlm_logits"):
    assert relative_error(ours[key], theirs[key]) <= TOLERANCE, key
  # tf-models-official lists the embedding output as encoder_outputs[0].
  assert len(theirs["encoder_outputs"]) == len(ours["encoder_outputs"]) + 1
  for mine, peer in zip(ours["encoder_outputs"], theirs["encoder_outputs"][1:]):
    assert relative_error(mine, peer) <= TOLERANCE


def _transformers_model(config, prefix):
  hf_config = transformers_config(config,
                                  true_hidden_size=config.true_hidden_size)
  model = transformers.MobileBertForPreTraining(hf_config)
  with torch.no_grad():
    for parameter in model.parameters():
      parameter.fill_(float("nan"))
  modeling_mobilebert.load_tf_weights_in_mobilebert(model, hf_config, prefix)
  for module in model.modules():
    # transformers' embedding and FFN-output LayerNorms use eps 1e-5, not the
    # config's; the original uses 1e-12.
    if isinstance(module, torch.nn.LayerNorm):
      module.eps = 1e-12
  unused = ("embedding_transformation", "bottleneck.attention")
  still_nan = [n for n, p in model.named_parameters()
               if torch.isnan(p).any() and not (
                   any(u in n for u in unused) and _unused(config, n))]
  assert not still_nan, f"transformers' loader skipped: {still_nan[:5]}"
  return model.eval()


def _unused(config, parameter_name):
  """transformers builds layers the original lacks for some configs."""
  if "embedding_transformation" in parameter_name:
    return not config.has_embedding_projection
  return config.use_bottleneck_attention


@pytest.mark.parametrize(
    "variant",
    [v for v, peers in sorted(PEERS.items()) if "transformers" in peers])
def test_equals_transformers(variant, tmp_path):
  config, variables, inputs, _, pretrainer = _setup(variant)
  prefix = tf1_io.write_tf1_checkpoint(variables, str(tmp_path / "model.ckpt"))
  model = _transformers_model(config, prefix)
  torch_inputs = dict(
      input_ids=torch.tensor(inputs["input_word_ids"], dtype=torch.long),
      attention_mask=torch.tensor(inputs["input_mask"], dtype=torch.long),
      token_type_ids=torch.tensor(inputs["input_type_ids"], dtype=torch.long))
  with torch.no_grad():
    theirs = model(**torch_inputs, output_hidden_states=True)
    pooled = model.mobilebert(**torch_inputs).pooler_output.numpy()
  ours = pretrainer(inputs)
  hidden_states = [h.numpy() for h in theirs.hidden_states]
  assert relative_error(ours["embedding_output"], hidden_states[0]) <= TOLERANCE
  for mine, peer in zip(ours["encoder_outputs"], hidden_states[1:]):
    assert relative_error(mine, peer) <= TOLERANCE
  assert relative_error(ours["pooled_output"], pooled) <= TOLERANCE
  mlm = np.take_along_axis(theirs.prediction_logits.numpy(),
                           inputs["masked_lm_positions"][..., None], axis=1)
  assert relative_error(ours["mlm_logits"], mlm) <= TOLERANCE
  assert relative_error(ours["next_sentence"],
                        theirs.seq_relationship_logits.numpy()) <= TOLERANCE


@pytest.mark.parametrize("layout", ["standard", "heads_first"])
@pytest.mark.parametrize("rule", ["exclude", "additive",
                                  "quantization_friendly"])
@pytest.mark.parametrize("variant", ["opt", "teacher"])
def test_mask_rules_and_attention_logits_equal_the_original(variant, rule,
                                                            layout):
  """Each mask rule, in each layout, against the NumPy original: every
  block's output and its masked pre-softmax scores (the original's
  `get_all_attention_maps()`)."""
  _, _, inputs, reference, pretrainer = _setup(
      variant, attention_mask_rule=rule, encoder_attention_layout=layout,
      encoder_return_attention_logits=True)
  outputs = pretrainer(inputs)
  for key, ref_key in (("sequence_output", "sequence_output"),
                       ("mlm_logits", "mlm_logits"),
                       ("next_sentence", "nsp_logits")):
    error = relative_error(outputs[key], reference[ref_key])
    assert error <= TOLERANCE, (key, error)
  assert len(outputs["attention_logits"]) == len(reference["attention_logits"])
  for ours, ref in zip(outputs["attention_logits"],
                       reference["attention_logits"]):
    assert relative_error(ours, ref) <= TOLERANCE


def test_mask_rules_differ():
  """The rules differ on padded inputs, so the test above cannot pass by
  ignoring the rule: -6 leaves padded keys a share of e^-6 and changes the
  outputs; -10000, like "exclude", gives them weight 0 in float32 (the same
  outputs) but other masked logits."""
  outputs = {}
  for rule in ("exclude", "additive", "quantization_friendly"):
    _, _, inputs, _, pretrainer = _setup(
        "opt", attention_mask_rule=rule, encoder_return_attention_logits=True)
    outputs[rule] = pretrainer(inputs)
  assert relative_error(outputs["quantization_friendly"]["sequence_output"],
                        outputs["exclude"]["sequence_output"]) > 1e-3
  assert relative_error(outputs["additive"]["sequence_output"],
                        outputs["exclude"]["sequence_output"]) <= TOLERANCE
  assert relative_error(outputs["additive"]["attention_logits"][0],
                        outputs["exclude"]["attention_logits"][0]) > 0.5


def test_reference_detects_a_wrong_weight():
  """The comparison is sharp: one perturbed weight breaks it."""
  config, variables, inputs, reference, pretrainer = _setup("opt")
  kernel = pretrainer.encoder_network.transformer_layers[1].attention._key_dense.kernel
  kernel.assign(kernel * 1.01)
  outputs = pretrainer(inputs)
  assert relative_error(outputs["sequence_output"],
                        reference["sequence_output"]) > 1e-4
