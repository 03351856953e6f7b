"""MobileBERT Keras layers, one module per role.

* `normalization`: `NoNorm`, `get_norm_layer`.
* `attention`: `MobileBertAttention`, the layouts (`ATTENTION_LAYOUTS`) and
  the mask rules (`key_mask`, `mask_scores`).
* `embedding`: `MobileBertEmbedding`.
* `transformer`: `MobileBertTransformer`, one block.
* `masked_lm`: `MobileBertMaskedLM`, the pretraining head.
* `quantization`: 8-bit fake quantization for quantization-aware training
  (`ActivationQuantizer`, `calibrate_ranges`, `quantize_kernel`).
* `serialization`: the Keras registration package.

Numerics follow google-research `mobilebert/modeling.py` (TF1). The object
graph follows tf-models-official's `mobile_bert_layers`, so object-based
checkpoints interchange with it in both directions.
"""

from mobilebert_tf.layers.activations import gelu
from mobilebert_tf.layers.activations import get_activation
from mobilebert_tf.layers.attention import ATTENTION_LAYOUTS
from mobilebert_tf.layers.attention import MobileBertAttention
from mobilebert_tf.layers.attention import key_mask
from mobilebert_tf.layers.attention import mask_scores
from mobilebert_tf.layers.embedding import MobileBertEmbedding
from mobilebert_tf.layers.masked_lm import MobileBertMaskedLM
from mobilebert_tf.layers.normalization import NoNorm
from mobilebert_tf.layers.normalization import get_norm_layer
from mobilebert_tf.layers.quantization import ActivationQuantizer
from mobilebert_tf.layers.quantization import calibrate_ranges
from mobilebert_tf.layers.quantization import quantize_kernel
from mobilebert_tf.layers.transformer import MobileBertTransformer

__all__ = [
    "ATTENTION_LAYOUTS",
    "ActivationQuantizer",
    "MobileBertAttention",
    "MobileBertEmbedding",
    "MobileBertMaskedLM",
    "MobileBertTransformer",
    "NoNorm",
    "calibrate_ranges",
    "gelu",
    "get_activation",
    "get_norm_layer",
    "key_mask",
    "mask_scores",
    "quantize_kernel",
]
