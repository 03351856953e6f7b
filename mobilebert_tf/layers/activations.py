"""Activation functions by the names of the original `hidden_act` strings."""

import tensorflow as tf

from mobilebert_tf.config import ACTIVATIONS


def gelu(x):
  """GELU, tanh approximation: the original MobileBERT's `gelu`."""
  return tf.nn.gelu(x, approximate=True)


_ACTIVATION_FNS = {
    "linear": None,
    "relu": tf.nn.relu,
    "relu6": tf.nn.relu6,
    "gelu": gelu,
    "tanh": tf.tanh,
}


def get_activation(name):
  """Maps an original `hidden_act` string to a function (None for linear).

  Raises:
    ValueError: `name` is not one of `config.ACTIVATIONS`.
  """
  if not isinstance(name, str) or name.lower() not in _ACTIVATION_FNS:
    raise ValueError(f"`hidden_act` must be one of {ACTIVATIONS}. "
                     f"Received: {name!r}")
  return _ACTIVATION_FNS[name.lower()]
