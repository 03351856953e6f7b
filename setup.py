"""mobilebert_tf: MobileBERT for TensorFlow 2 / tf_keras."""

import setuptools

setuptools.setup(
    name="mobilebert_tf",
    version="0.1.0",
    description=("MobileBERT for TensorFlow 2 / tf_keras: numerically equal to "
                 "the original, checkpoint-compatible with tf-models-official, "
                 "exportable to TF-Hub SavedModels and TFLite."),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    # The library and the command-line tools it documents (`python -m
    # checkpoints.convert`, `export.*`, `training.*`); benchmarks and tests
    # run from the checkout.
    packages=setuptools.find_packages(
        include=["mobilebert_tf", "mobilebert_tf.*", "checkpoints",
                 "checkpoints.*", "export", "export.*", "training",
                 "training.*"]),
    package_data={"mobilebert_tf": ["presets/*.json"],
                  "checkpoints": ["demo/*", "demo/qa/*", "demo/sentences/*"]},
    python_requires=">=3.10,<3.13",
    install_requires=[
        "tensorflow==2.20.*",
        "tf-keras==2.20.*",
        "tensorflow-text==2.20.*",
        "tensorflow-hub==0.16.*",
        "tf-models-official==2.20.*",
        "absl-py>=1.4,<3",
        # The LiteRT interpreter that export.to_tflite verifies with.
        "ai-edge-litert>=2.0,<3",
        "numpy>=1.26,<3",
        # The GLUE metrics of training.glue_metrics (F1, Matthews
        # correlation; Pearson and Spearman).
        "scikit-learn==1.9.*",
        "scipy==1.17.*",
        # tensorflow_hub 0.16.1 imports pkg_resources, gone in setuptools 81.
        "setuptools<81",
    ],
    extras_require={
        "test": [
            "pytest>=8,<10",
            # The suite runs on two workers (`make test`): most tests trace
            # graphs on one core.
            "pytest-xdist>=3.8,<4",
            # The workers build the documentation workspace once, together.
            "filelock>=3.12,<5",
            "transformers>=4.40,<5",
            "torch==2.13.0",
        ],
    },
    license="Apache-2.0",
)
