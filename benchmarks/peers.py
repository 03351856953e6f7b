"""The peers' models for one of our configs: tf-models-official, transformers.

Every import is inside the function that needs it: the per-row memory
process (`benchmarks.memory`) measures transformers' row without TensorFlow
loaded, so this module must not pull TensorFlow in at import time.
"""

# pylint: disable=g-import-not-at-top

from typing import Mapping, Optional


def transformers_config(values: Mapping[str, object], **extra):
  """transformers' `MobileBertConfig` computing what our config computes.

  Two of its defaults differ from the original: its "gelu" is the exact erf
  form (the original's is the tanh approximation, its "gelu_new"), and its
  layer norm epsilon is 1e-5 (the original's is 1e-12). Keys it does not
  know (`attention_mask_rule`, ...) become inert attributes.

  Args:
    values: dict. `MobileBertConfig.to_dict()`: the original JSON keys.
    **extra: further transformers arguments (`num_labels`, ...).

  Returns:
    A `transformers.MobileBertConfig`.
  """
  import transformers
  values = dict(values)
  values["hidden_act"] = {"gelu": "gelu_new"}.get(values["hidden_act"],
                                                   values["hidden_act"])
  return transformers.MobileBertConfig(**values, layer_norm_eps=1e-12,
                                       **extra)


def torch_model(values: Mapping[str, object],
                tf1_checkpoint: Optional[str] = None):
  """transformers' PyTorch `MobileBertModel` for a config, in eval mode.

  Args:
    values: dict. `MobileBertConfig.to_dict()`.
    tf1_checkpoint: str or None. An original-layout TF1 checkpoint prefix to
      load (`checkpoints.tf1_io.export_tf1_checkpoint` writes one); None
      keeps transformers' random initialization. Loading imports
      TensorFlow (transformers reads the checkpoint with it).
  """
  import transformers
  transformers.logging.set_verbosity_error()
  config = transformers_config(values)
  model = transformers.MobileBertForPreTraining(config)
  if tf1_checkpoint:
    from transformers.models.mobilebert import modeling_mobilebert
    modeling_mobilebert.load_tf_weights_in_mobilebert(model, config,
                                                      tf1_checkpoint)
  model = model.mobilebert
  model.eval()
  return model


def tfm_encoder(config):
  """tf-models-official's `MobileBERTEncoder` for a `MobileBertConfig`.

  Our encoder's arguments are its, plus the options it lacks; the object
  graphs are the same, so checkpoints of either restore into the other.

  Raises:
    ValueError: the config uses an option tf-models-official cannot express.
  """
  from official.nlp.modeling import networks
  from mobilebert_tf.encoder import encoder_kwargs
  if not (config.trigram_input and config.use_bottleneck):
    raise ValueError("tf-models-official's MobileBERTEncoder always uses the "
                     "trigram input and the bottleneck.")
  kwargs = encoder_kwargs(config)
  del kwargs["trigram_input"], kwargs["use_bottleneck"]
  rule = kwargs.pop("attention_mask_rule", "exclude")
  if rule != "exclude":
    raise ValueError("tf-models-official's MobileBERTEncoder excludes padded "
                     f"keys. Received: attention_mask_rule={rule!r}")
  if kwargs.pop("use_quantized_training"):
    raise ValueError("tf-models-official's MobileBERTEncoder has no "
                     "quantization-aware training.")
  return networks.MobileBERTEncoder(**kwargs)
