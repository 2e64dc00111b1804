"""Offline stand-ins for a real checkpoint: a word-level tokenizer and a random Llama.

The hub is not reachable from CI, so the tests and ``bench/hf_throughput.py --tiny``
build these at run time and load them through ``hf/<dir>`` like any checkpoint.
The tokenizer is word-level on purpose: decoding then re-encoding a generation gives
back the same ids, so token counts can be checked against the tokenizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

# A <think> family template (DeepSeek-R1 / QwQ style): the generation prompt opens the
# thought, so everything the model writes up to </think> is reasoning.
CHAT_TEMPLATE = (
    "{%- for m in messages -%}<|{{ m.role }}|> {{ m.content }}\n{% endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|> <think>\n{%- endif -%}")
SPECIAL = ["<pad>", "<s>", "</s>", "<unk>", "<|system|>", "<|user|>", "<|assistant|>"]
THINK = ["<think>", "</think>"]
WORDS = (["ANSWER:", "Wait", "so", "the", "answer", "is", "think", "step", "hmm", "ok", "yes",
          "no", "Compute", "+", "-", "*", "=", "(", ")"] + [str(i) for i in range(40)])


def tiny_tokenizer(words: list[str] | None = None, *, added: Sequence[str] = (),
                   special: Sequence[str] = ()) -> Any:
    """Word-level tokenizer (whitespace split) with pad/bos/eos/unk, think tags, a template.

    ``added``: more tokens kept in decoding (as Qwen's ``<tool_call>``); ``special``: more
    special tokens (as Mistral's ``[TOOL_CALLS]``), which a plain decode drops."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(SPECIAL + list(special) + THINK + list(added)
                                        + list(words or WORDS))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with single spaces
    tok.add_special_tokens([AddedToken(t, special=True) for t in SPECIAL + list(special)])
    # Think tags are added but not special (as in Qwen3): they survive decoding.
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK + list(added)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def random_llama(vocab_size: int, *, hidden: int = 32, layers: int = 2, heads: int = 4,
                 kv_heads: int = 2, intermediate: int = 64, seed: int = 0, init: float = 0.5,
                 tie: bool = False, ids: dict[str, int] | None = None,
                 reward: bool = False) -> Any:
    """A randomly initialised LlamaForCausalLM; ``init`` large enough that logits differ.
    ``reward``: a LlamaForSequenceClassification with one output instead (a reward model)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    ids = ids or {}
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=intermediate,
                         num_hidden_layers=layers, num_attention_heads=heads,
                         num_key_value_heads=kv_heads, max_position_embeddings=4096,
                         initializer_range=init, tie_word_embeddings=tie,
                         pad_token_id=ids.get("pad"), bos_token_id=ids.get("bos"),
                         eos_token_id=ids.get("eos"), num_labels=1)
    torch.manual_seed(seed)
    return (LlamaForSequenceClassification if reward else LlamaForCausalLM)(config).eval()


def bias_tokens(model: Any, biases: dict[int, float]) -> None:
    """Give tokens a fixed logit offset in a Llama, which has no lm_head bias.

    Residual feature 0 is made constant: every embedding has 1.0 there and no layer
    writes to it (row 0 of o_proj and down_proj zeroed), so after the final RMSNorm it
    is always positive. lm_head column 0 then acts as a per-token bias: a large negative
    weight means the token is never chosen, a large positive one that it always is.
    """
    import torch

    with torch.no_grad():
        inner = model.model
        inner.embed_tokens.weight[:, 0] = 1.0
        for layer in inner.layers:
            layer.self_attn.o_proj.weight[0, :] = 0.0
            layer.mlp.down_proj.weight[0, :] = 0.0
        for token, bias in biases.items():
            model.lm_head.weight[token, 0] = bias


def save_tiny(directory: str | Path, *, ban: Sequence[str] = (), favour: Sequence[str] = (),
              seed: int = 0, tokens: dict[str, Any] | None = None, **model_kw: Any) -> Path:
    """Tokenizer + random model in ``directory``; ``ban``/``favour`` token strings
    (``reward=True``: a one-output reward model, which has no tokens to bias);
    ``tokens``: ``tiny_tokenizer``'s arguments (words, added, special)."""
    directory = Path(directory)
    tokenizer = tiny_tokenizer(**(tokens or {}))
    vocab = tokenizer.get_vocab()
    model = random_llama(len(vocab), seed=seed, ids={
        "pad": tokenizer.pad_token_id, "bos": tokenizer.bos_token_id,
        "eos": tokenizer.eos_token_id}, **model_kw)
    # 1e4: the residual stream's RMS grows through the layers, and the offset shrinks with it.
    biases = {vocab[t]: -1e4 for t in ban}
    biases.update({vocab[t]: 1e4 for t in favour})
    if biases:
        bias_tokens(model, biases)
    tokenizer.save_pretrained(directory)
    model.save_pretrained(directory)
    return directory

