"""Training: the CLIs that make and adapt models, and their parts.

The command lines: `create_pretraining_data` (text -> BERT records),
`pretrain` (MLM + NSP on `tf.distribute`), `distill` (teacher -> student,
the paper's progressive knowledge transfer) and `run_classifier`
(fine-tuning). Each other module has one job; the README's layout lists
them. Optimizers and schedules come from `mobilebert_tf.optimization`.
"""
