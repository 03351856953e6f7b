"""Independent reference of the ORIGINAL TF1 MobileBERT, for tests.

Ground truth: google-research `mobilebert/modeling.py` and `run_pretraining.py`
(TF1). This module knows nothing about `mobilebert_tf`; it only knows the
original variable names (the TF1 scopes) and the original math, so tests can:

1. build the exact variable table of a config (`tf1_variable_shapes`),
2. fill it with non-trivial random values (`random_tf1_variables`),
3. write it as a name-based TF1 checkpoint (`write_tf1_checkpoint`),
4. compute the original forward pass in NumPy float64 (`reference_forward`),
5. compare by relative error (`relative_error`).

The reference is itself validated against transformers' PyTorch MobileBERT in
`tests/test_tf1_reference.py`.

One deliberate deviation from the original: padded keys. The original adds a
constant (-10000) to the scores of padded keys, so they keep a tiny softmax
weight. This project follows its two peers (tf-models-official and
transformers), which remove padded keys completely (softmax weight exactly 0);
see `_attention`.

Example:

>>> cfg = TEST_CONFIGS["opt"]
>>> variables = random_tf1_variables(cfg, seed=0)
>>> inputs = make_inputs(cfg, seed=0)
>>> out = reference_forward(variables, cfg, **inputs)
>>> out["sequence_output"].shape
(3, 12, 32)
"""

import collections
import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

# === Config ===

# Keys the original `BertConfig` gives a default to. The others are required.
_DEFAULTS = {
    "trigram_input": False,
    "use_bottleneck": False,
    "use_bottleneck_attention": False,
    "key_query_shared_bottleneck": False,
    "num_feedforward_networks": 1,
    "classifier_activation": True,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "initializer_range": 0.02,
}
_REQUIRED = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "max_position_embeddings",
    "type_vocab_size",
    "normalization_type",
)
_NORM_SCOPES = {"layer_norm": "LayerNorm", "no_norm": "FakeLayerNorm"}


def _resolve(config):
    """Returns a copy of `config` with the original defaults filled in."""
    missing = [k for k in _REQUIRED if k not in config]
    if missing:
        raise ValueError(f"Config lacks required keys {missing}. Received: `config={config}`")
    cfg = dict(_DEFAULTS)
    cfg.update(config)
    cfg.setdefault("embedding_size", cfg["hidden_size"])
    cfg.setdefault("intra_bottleneck_size", cfg["hidden_size"])
    if cfg["normalization_type"] not in _NORM_SCOPES:
        raise ValueError(
            "`normalization_type` must be one of ('layer_norm', 'no_norm'). "
            f"Received: {cfg['normalization_type']!r}"
        )
    true_hidden = cfg["intra_bottleneck_size"] if cfg["use_bottleneck"] else cfg["hidden_size"]
    if true_hidden % cfg["num_attention_heads"]:
        raise ValueError(
            f"True hidden size ({true_hidden}) must be divisible by "
            f"`num_attention_heads` ({cfg['num_attention_heads']})."
        )
    cfg["true_hidden_size"] = true_hidden
    cfg["head_size"] = true_hidden // cfg["num_attention_heads"]
    return cfg


# Tiny variants of the published layouts. Sizes follow STYLE.md's tiny_config.
_BASE = dict(
    vocab_size=72,
    hidden_size=32,
    embedding_size=16,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=24,
    max_position_embeddings=64,
    type_vocab_size=2,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.1,
    initializer_range=0.02,
)

TEST_CONFIGS = {
    # MobileBERT (the distilled student): no_norm, relu, trigram, bottleneck
    # with shared key/query bottleneck, stacked FFNs, no pooler dense.
    "opt": dict(
        _BASE,
        hidden_act="relu",
        normalization_type="no_norm",
        trigram_input=True,
        use_bottleneck=True,
        intra_bottleneck_size=16,
        use_bottleneck_attention=False,
        key_query_shared_bottleneck=True,
        num_feedforward_networks=3,
        classifier_activation=False,
    ),
    # MobileBERT-tiny: q = k = v = the bottlenecked input. It also sets
    # key_query_shared_bottleneck, which the original then ignores (no
    # `bottleneck/attention` variables): use_bottleneck_attention wins.
    "tiny": dict(
        _BASE,
        vocab_size=64,
        intermediate_size=48,
        type_vocab_size=3,
        hidden_act="relu",
        normalization_type="no_norm",
        trigram_input=True,
        use_bottleneck=True,
        intra_bottleneck_size=16,
        use_bottleneck_attention=True,
        key_query_shared_bottleneck=True,
        num_feedforward_networks=2,
        classifier_activation=False,
    ),
    # IB-BERT teacher: inverted bottleneck (intra_bottleneck > hidden),
    # attention on the un-bottlenecked hidden state.
    "teacher": dict(
        _BASE,
        vocab_size=100,
        intermediate_size=40,
        hidden_act="gelu",
        normalization_type="layer_norm",
        trigram_input=True,
        use_bottleneck=True,
        intra_bottleneck_size=48,
        use_bottleneck_attention=False,
        key_query_shared_bottleneck=False,
        num_feedforward_networks=1,
        classifier_activation=True,
    ),
    # BERT-like: no trigram, no bottleneck, embedding_size == hidden_size.
    "plain": dict(
        _BASE,
        embedding_size=32,
        intermediate_size=36,
        type_vocab_size=3,
        hidden_act="gelu",
        normalization_type="layer_norm",
        trigram_input=False,
        use_bottleneck=False,
        num_feedforward_networks=1,
        classifier_activation=True,
    ),
}
TEST_CONFIGS["opt_pooler"] = dict(TEST_CONFIGS["opt"], classifier_activation=True)


# === Variable table ===


def tf1_variable_shapes(config, with_pooler=None, with_mlm=True, with_nsp=True):
    """Returns the original TF1 variable names and shapes of a config.

    Args:
        config: dict. Original bert_config.json keys.
        with_pooler: bool or None. Include `bert/pooler/dense`. Defaults to
            `classifier_activation` (the original only creates it then).
        with_mlm: bool. Include the `cls/predictions` head. Defaults to True.
        with_nsp: bool. Include the `cls/seq_relationship` head. Defaults to
            True.

    Returns:
        `collections.OrderedDict` {name: shape tuple}, in creation order.
    """
    cfg = _resolve(config)
    if with_pooler is None:
        with_pooler = cfg["classifier_activation"]
    h, e, v = cfg["hidden_size"], cfg["embedding_size"], cfg["vocab_size"]
    t, i_size = cfg["true_hidden_size"], cfg["intermediate_size"]
    b = cfg["intra_bottleneck_size"]
    norm = _NORM_SCOPES[cfg["normalization_type"]]
    shapes = collections.OrderedDict()

    def dense(scope, n_in, n_out):
        shapes[f"{scope}/kernel"] = (n_in, n_out)
        shapes[f"{scope}/bias"] = (n_out,)

    def norm_vars(scope, width, kind=norm):
        shapes[f"{scope}/{kind}/gamma"] = (width,)
        shapes[f"{scope}/{kind}/beta"] = (width,)

    emb = "bert/embeddings"
    shapes[f"{emb}/word_embeddings"] = (v, e)
    if cfg["trigram_input"] or e != h:
        dense(f"{emb}/embedding_transformation", 3 * e if cfg["trigram_input"] else e, h)
    shapes[f"{emb}/token_type_embeddings"] = (cfg["type_vocab_size"], h)
    shapes[f"{emb}/position_embeddings"] = (cfg["max_position_embeddings"], h)
    norm_vars(emb, h)

    use_bn = cfg["use_bottleneck"]
    bn_attention = use_bn and cfg["use_bottleneck_attention"]
    kq_shared = use_bn and not bn_attention and cfg["key_query_shared_bottleneck"]
    qk_width = b if (bn_attention or kq_shared) else h
    v_width = b if bn_attention else h
    for layer in range(cfg["num_hidden_layers"]):
        p = f"bert/encoder/layer_{layer}"
        if use_bn:
            dense(f"{p}/bottleneck/input/dense", h, b)
            norm_vars(f"{p}/bottleneck/input", b)
            if kq_shared:
                dense(f"{p}/bottleneck/attention/dense", h, b)
                norm_vars(f"{p}/bottleneck/attention", b)
        dense(f"{p}/attention/self/query", qk_width, t)
        dense(f"{p}/attention/self/key", qk_width, t)
        dense(f"{p}/attention/self/value", v_width, t)
        dense(f"{p}/attention/output/dense", t, t)
        norm_vars(f"{p}/attention/output", t)
        for f in range(cfg["num_feedforward_networks"] - 1):
            dense(f"{p}/ffn_layer_{f}/intermediate/dense", t, i_size)
            dense(f"{p}/ffn_layer_{f}/output/dense", i_size, t)
            norm_vars(f"{p}/ffn_layer_{f}/output", t)
        dense(f"{p}/intermediate/dense", t, i_size)
        dense(f"{p}/output/dense", i_size, t)
        norm_vars(f"{p}/output", t)
        if use_bn:
            dense(f"{p}/output/bottleneck/dense", t, h)
            norm_vars(f"{p}/output/bottleneck", h)
    if with_pooler:
        dense("bert/pooler/dense", h, h)
    if with_mlm:
        dense("cls/predictions/transform/dense", h, h)
        norm_vars("cls/predictions/transform", h, kind="LayerNorm")  # always real LN
        shapes["cls/predictions/output_bias"] = (v,)
        if h != e:
            shapes["cls/predictions/extra_output_weights"] = (v, h - e)
    if with_nsp:
        shapes["cls/seq_relationship/output_weights"] = (2, h)
        shapes["cls/seq_relationship/output_bias"] = (2,)
    return shapes


def random_tf1_variables(
    config,
    seed,
    with_optimizer_slots=False,
    with_global_step=None,
    with_pooler=None,
    with_mlm=True,
    with_nsp=True,
):
    """Returns non-trivial random values for the original variables.

    No zeros or ones that could hide a mapping mistake (a swapped gamma/beta,
    an untransposed kernel, a missed bias): gamma ~ U(0.5, 1.5), beta and
    biases ~ N(0, 0.1), kernels ~ N(0, 1/sqrt(fan_in)) so activations stay
    sane through a few layers, embedding tables ~ N(0, 0.5). Each variable
    gets its own draw.

    Args:
        config: dict. Original bert_config.json keys.
        seed: int. NumPy seed.
        with_optimizer_slots: bool. Add `<var>/adam_m` (N(0, 0.01)) and
            `<var>/adam_v` (U(1e-6, 1e-3)) per variable, as the original
            `AdamWeightDecayOptimizer` does. Defaults to False.
        with_global_step: bool or None. Add int64 scalar `global_step`.
            Defaults to `with_optimizer_slots`.
        with_pooler, with_mlm, with_nsp: as in `tf1_variable_shapes`.

    Returns:
        `collections.OrderedDict` {name: np.ndarray}; float32 except
        `global_step` (int64).
    """
    if with_global_step is None:
        with_global_step = with_optimizer_slots
    rng = np.random.default_rng(seed)
    shapes = tf1_variable_shapes(config, with_pooler=with_pooler, with_mlm=with_mlm, with_nsp=with_nsp)
    out = collections.OrderedDict()
    for name, shape in shapes.items():
        leaf = name.rsplit("/", 1)[-1]
        if leaf == "gamma":
            value = rng.uniform(0.5, 1.5, shape)
        elif leaf in ("beta", "bias", "output_bias"):
            value = rng.normal(0.0, 0.1, shape)
        elif leaf == "kernel":
            value = rng.normal(0.0, 1.0 / math.sqrt(shape[0]), shape)
        elif leaf == "output_weights":  # NSP [2, hidden]: fan_in is hidden
            value = rng.normal(0.0, 1.0 / math.sqrt(shape[1]), shape)
        else:  # *_embeddings, extra_output_weights
            value = rng.normal(0.0, 0.5, shape)
        out[name] = value.astype(np.float32)
    if with_optimizer_slots:
        for name, shape in shapes.items():
            out[f"{name}/adam_m"] = rng.normal(0.0, 0.01, shape).astype(np.float32)
            out[f"{name}/adam_v"] = rng.uniform(1e-6, 1e-3, shape).astype(np.float32)
    if with_global_step:
        out["global_step"] = np.array(int(rng.integers(1, 1_000_000)), dtype=np.int64)
    return out


# === Checkpoint ===


def write_tf1_checkpoint(variables, prefix):
    """Writes `{name: array}` as a name-based TF1 checkpoint; returns `prefix`.

    The project's own writer (`checkpoints.tf1_io`), a thin `tf.compat.v1`
    Saver: `tf.train.list_variables(prefix)` returns exactly these names.
    """
    from checkpoints import tf1_io

    return tf1_io.write_tf1_checkpoint(variables, prefix)


# === Forward pass (NumPy float64) ===


def _act(name):
    if name == "gelu":  # the original's gelu is the tanh approximation
        return lambda x: 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    if name == "relu":
        return lambda x: np.maximum(x, 0.0)
    if name == "relu6":
        return lambda x: np.clip(x, 0.0, 6.0)
    if name == "tanh":
        return np.tanh
    if name == "linear":
        return lambda x: x
    raise ValueError(
        "`hidden_act` must be one of ('relu', 'gelu', 'tanh', 'relu6', 'linear'). " f"Received: {name!r}"
    )


def _layer_norm(x, gamma, beta):
    # contrib layer_norm over the last axis, population variance, eps 1e-12.
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * gamma + beta


def _softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def relative_error(out, ref):
    """Returns ||out - ref|| / ||ref|| (Frobenius norm, float64)."""
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if out.shape != ref.shape:
        raise ValueError(f"Shapes differ: out {out.shape} vs ref {ref.shape}.")
    return float(np.linalg.norm(out - ref) / np.linalg.norm(ref))


def reference_forward(variables, config, input_ids, input_mask, token_type_ids, masked_lm_positions=None):
    """Runs the original TF1 MobileBERT in NumPy float64, inference mode.

    Args:
        variables: dict {TF1 name: array}; e.g. `random_tf1_variables(...)`.
            Optimizer slots and `global_step` are ignored.
        config: dict. Original bert_config.json keys.
        input_ids: int array [batch, seq].
        input_mask: int array [batch, seq]; 1 = real token, 0 = padding.
        token_type_ids: int array [batch, seq].
        masked_lm_positions: int array [batch, num_pred] or None. None
            computes MLM logits at every position (num_pred = seq).

    Returns:
        dict with `embedding_output` [batch, seq, hidden], `encoder_outputs`
        (list of num_hidden_layers arrays [batch, seq, hidden], not including
        the embedding output), `attention_logits` (per block, the masked
        pre-softmax scores [batch, heads, seq, seq]: the original's
        `get_all_attention_maps()`), `sequence_output` [batch, seq, hidden],
        `pooled_output` [batch, hidden] (None when classifier_activation is
        set but the pooler variables are absent), and, when the head
        variables are present, `mlm_logits` [batch, num_pred, vocab] and
        `nsp_logits` [batch, 2].
    """
    cfg = _resolve(config)
    w = {k: np.asarray(a, dtype=np.float64) for k, a in variables.items() if np.asarray(a).dtype.kind == "f"}
    norm_kind = _NORM_SCOPES[cfg["normalization_type"]]
    act = _act(cfg["hidden_act"])
    input_ids = np.asarray(input_ids)
    input_mask = np.asarray(input_mask)
    token_type_ids = np.asarray(token_type_ids)
    batch, seq = input_ids.shape

    def dense(scope, x, activation=None):
        y = x @ w[f"{scope}/kernel"] + w[f"{scope}/bias"]
        return activation(y) if activation else y

    def norm(scope, x):
        gamma, beta = w[f"{scope}/{norm_kind}/gamma"], w[f"{scope}/{norm_kind}/beta"]
        if norm_kind == "LayerNorm":
            return _layer_norm(x, gamma, beta)
        return x * gamma + beta  # NoNorm: elementwise affine only

    # --- Embeddings ---
    emb = "bert/embeddings"
    word = w[f"{emb}/word_embeddings"][input_ids]  # [batch, seq, E]
    if cfg["trigram_input"]:
        # The paper's kernel-3 convolution: [next token, own, previous token],
        # zeros beyond the ends.
        zeros = np.zeros_like(word[:, :1])
        word = np.concatenate(
            [
                np.concatenate([word[:, 1:], zeros], axis=1),
                word,
                np.concatenate([zeros, word[:, :-1]], axis=1),
            ],
            axis=-1,
        )  # [batch, seq, 3E]
    if cfg["trigram_input"] or cfg["embedding_size"] != cfg["hidden_size"]:
        word = dense(f"{emb}/embedding_transformation", word)  # [batch, seq, H]
    x = word + w[f"{emb}/token_type_embeddings"][token_type_ids] + w[f"{emb}/position_embeddings"][:seq][None]
    x = norm(emb, x)  # [batch, seq, H]
    embedding_output = x

    # How padded keys are left out, on the scaled scores (`m` = 0/1 key mask):
    #   "exclude" (default; tf-models-official and transformers): padded keys
    #       get softmax weight exactly 0 (in float64, exp(-1e9 + O(10)) is 0);
    #   "additive" (the original 2020 release): scores + (1 - m) * -10000;
    #   "quantization_friendly" (the 2021 revision): scores * m + (1 - m) * -6.
    rule = cfg.get("attention_mask_rule", "exclude")
    m = (input_mask != 0).astype(np.float64)[:, None, None, :]  # [batch, 1, 1, seq]

    def apply_mask(scores):
        if rule == "exclude":
            return np.where(m > 0, scores, -1e9)
        if rule == "additive":
            return scores + (1.0 - m) * -10000.0
        if rule == "quantization_friendly":
            return scores * m + (1.0 - m) * -6.0
        raise ValueError(f"Unknown attention_mask_rule {rule!r}")

    n_heads, head = cfg["num_attention_heads"], cfg["head_size"]

    def heads(t):  # [batch, seq, N*head] -> [batch, N, seq, head]
        return t.reshape(batch, seq, n_heads, head).transpose(0, 2, 1, 3)

    use_bn = cfg["use_bottleneck"]
    encoder_outputs, attention_logits = [], []
    prev = x
    for layer in range(cfg["num_hidden_layers"]):
        p = f"bert/encoder/layer_{layer}"
        if use_bn:
            layer_input = norm(f"{p}/bottleneck/input", dense(f"{p}/bottleneck/input/dense", prev))  # [b, s, B]
            if cfg["use_bottleneck_attention"]:
                q_in = k_in = v_in = layer_input
            elif cfg["key_query_shared_bottleneck"]:
                shared = norm(f"{p}/bottleneck/attention", dense(f"{p}/bottleneck/attention/dense", prev))
                q_in = k_in = shared  # [b, s, B]
                v_in = prev  # [b, s, H]
            else:
                q_in = k_in = v_in = prev
        else:
            layer_input = q_in = k_in = v_in = prev
        q = heads(dense(f"{p}/attention/self/query", q_in))  # [b, N, s, head]
        k = heads(dense(f"{p}/attention/self/key", k_in))
        v = heads(dense(f"{p}/attention/self/value", v_in))
        scores = apply_mask(q @ k.transpose(0, 1, 3, 2) / math.sqrt(head))  # [b, N, s, s]
        attention_logits.append(scores)
        context = _softmax(scores) @ v  # [b, N, s, head]
        context = context.transpose(0, 2, 1, 3).reshape(batch, seq, n_heads * head)  # [b, s, T]
        attention_output = dense(f"{p}/attention/output/dense", context)  # [b, s, T]
        attention_output = norm(f"{p}/attention/output", attention_output + layer_input)
        for f in range(cfg["num_feedforward_networks"] - 1):
            fp = f"{p}/ffn_layer_{f}"
            inter = dense(f"{fp}/intermediate/dense", attention_output, act)  # [b, s, I]
            out = dense(f"{fp}/output/dense", inter)  # [b, s, T]
            attention_output = norm(f"{fp}/output", out + attention_output)
        inter = dense(f"{p}/intermediate/dense", attention_output, act)  # [b, s, I]
        out = dense(f"{p}/output/dense", inter)  # [b, s, T]
        out = norm(f"{p}/output", out + attention_output)
        if use_bn:
            out = dense(f"{p}/output/bottleneck/dense", out)  # [b, s, H]
            out = norm(f"{p}/output/bottleneck", out + prev)
        encoder_outputs.append(out)
        prev = out
    sequence_output = prev  # [batch, seq, H]

    first = sequence_output[:, 0]  # [batch, H]
    if not cfg["classifier_activation"]:
        pooled_output = first
    elif "bert/pooler/dense/kernel" in w:
        pooled_output = dense("bert/pooler/dense", first, np.tanh)
    else:
        pooled_output = None

    result = {
        "embedding_output": embedding_output,
        "encoder_outputs": encoder_outputs,
        "sequence_output": sequence_output,
        "pooled_output": pooled_output,
        "attention_logits": attention_logits,
    }
    if "cls/predictions/output_bias" in w:
        if masked_lm_positions is None:
            masked_lm_positions = np.broadcast_to(np.arange(seq), (batch, seq))
        positions = np.asarray(masked_lm_positions)
        gathered = np.take_along_axis(sequence_output, positions[..., None], axis=1)  # [b, P, H]
        t = dense("cls/predictions/transform/dense", gathered, act)
        t = _layer_norm(t, w["cls/predictions/transform/LayerNorm/gamma"], w["cls/predictions/transform/LayerNorm/beta"])
        out_w = w["bert/embeddings/word_embeddings"]  # [V, E]
        if "cls/predictions/extra_output_weights" in w:
            out_w = np.concatenate([out_w, w["cls/predictions/extra_output_weights"]], axis=1)  # [V, H]
        result["mlm_logits"] = t @ out_w.T + w["cls/predictions/output_bias"]  # [b, P, V]
    if "cls/seq_relationship/output_weights" in w and pooled_output is not None:
        result["nsp_logits"] = (
            pooled_output @ w["cls/seq_relationship/output_weights"].T + w["cls/seq_relationship/output_bias"]
        )  # [batch, 2]
    return result


# === Inputs ===


def make_inputs(config, batch=3, seq=12, num_predictions=4, seed=0):
    """Returns deterministic int32 inputs with padding and two segments.

    Row 0 is full length; the other rows are shorter, with distinct lengths
    where possible. Token ids of padding are 0. Each row has segment 0 then
    segment 1 within its real tokens. Masked positions are distinct, sorted,
    inside the real tokens and never position 0.

    Args:
        config: dict. Original bert_config.json keys (vocab, type vocab,
            max positions are read).
        batch: int. Defaults to 3.
        seq: int. Defaults to 12.
        num_predictions: int. Masked positions per row. Defaults to 4.
        seed: int. Defaults to 0.

    Returns:
        dict of int32 arrays: `input_ids`, `input_mask`, `token_type_ids`
        [batch, seq] and `masked_lm_positions` [batch, num_predictions];
        the keys are `reference_forward`'s argument names.
    """
    if seq > config["max_position_embeddings"]:
        raise ValueError(f"`seq` ({seq}) exceeds `max_position_embeddings` ({config['max_position_embeddings']}).")
    min_len = max(num_predictions + 1, 2)
    if seq < min_len:
        raise ValueError(f"`seq` ({seq}) must be at least `num_predictions` + 1 ({min_len}).")
    rng = np.random.default_rng(seed)
    candidates = np.arange(min_len, seq)
    if len(candidates) >= batch - 1:
        others = rng.choice(candidates, size=batch - 1, replace=False)
    else:
        others = rng.integers(min_len, seq + 1, size=batch - 1)
    lengths = [seq] + sorted(int(n) for n in others)[::-1]
    input_ids = np.zeros((batch, seq), np.int32)
    input_mask = np.zeros((batch, seq), np.int32)
    token_type_ids = np.zeros((batch, seq), np.int32)
    positions = np.zeros((batch, num_predictions), np.int32)
    for row, length in enumerate(lengths):
        input_ids[row, :length] = rng.integers(1, config["vocab_size"], size=length)
        input_mask[row, :length] = 1
        boundary = int(rng.integers(1, length))
        token_type_ids[row, boundary:length] = 1
        positions[row] = np.sort(rng.choice(np.arange(1, length), size=num_predictions, replace=False))
    return {
        "input_ids": input_ids,
        "input_mask": input_mask,
        "token_type_ids": token_type_ids,
        "masked_lm_positions": positions,
    }
