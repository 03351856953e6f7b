"""mobilebert_tf: MobileBERT for TensorFlow 2 / tf_keras.

Numerically equal to the original TF1 implementation, checkpoint-compatible
with tf-models-official, exportable as TF-Hub SavedModels and TFLite.
"""

# === Config ===
from mobilebert_tf.config import MobileBertConfig
from mobilebert_tf.config import PRESETS
from mobilebert_tf.config import load_config

# === Layers ===
from mobilebert_tf.layers import MobileBertEmbedding
from mobilebert_tf.layers import MobileBertMaskedLM
from mobilebert_tf.layers import MobileBertTransformer
from mobilebert_tf.layers import NoNorm
from mobilebert_tf.layers import get_norm_layer

# === Functional Model ===
from mobilebert_tf.encoder import ENCODER_INPUTS
from mobilebert_tf.encoder import MobileBERTEncoder
from mobilebert_tf.encoder import build_encoder
from mobilebert_tf.pretrainer import MobileBertPretrainer
from mobilebert_tf.pretrainer import build_pretrainer

# === Inference ===
from mobilebert_tf.inference import freeze_for_inference

__version__ = "0.1.0"

__all__ = [
    "MobileBertConfig",
    "PRESETS",
    "load_config",
    "NoNorm",
    "get_norm_layer",
    "MobileBertEmbedding",
    "MobileBertTransformer",
    "MobileBertMaskedLM",
    "ENCODER_INPUTS",
    "MobileBERTEncoder",
    "build_encoder",
    "MobileBertPretrainer",
    "build_pretrainer",
    "freeze_for_inference",
]
