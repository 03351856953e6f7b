"""Weight initializers of the layers."""

import tf_keras


def default_initializer(stddev: float = 0.02):
  """Truncated normal with `stddev`: the original's `create_initializer`."""
  return tf_keras.initializers.TruncatedNormal(stddev=stddev)


def clone_initializer(initializer):
  """A fresh instance of `initializer`, so no two weights share one.

  (A shared seeded instance would give every weight the same values.)
  """
  return tf_keras.initializers.get(
      tf_keras.initializers.serialize(tf_keras.initializers.get(initializer)))
