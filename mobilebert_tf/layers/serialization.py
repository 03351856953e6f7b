"""The Keras registration package of this library's layers."""

# `tf_keras.utils.register_keras_serializable(package=PACKAGE)` names the
# layers "MobileBertTF>NoNorm", ... in saved Keras configs.
PACKAGE = "MobileBertTF"
