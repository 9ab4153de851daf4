"""Which causal-LM architecture an adapter was trained on, from its layer names and widths.

Every LLM adapter is ``llm`` as a base model; the architecture is the detail a
user needs to pick the right base. Layer names separate the naming schemes
(GPT-2's fused ``c_attn``, GPT-NeoX's ``query_key_value``, Phi-3's ``qkv_proj``,
OPT's ``decoder.layers``); the many models with Llama-style names (llama,
mistral, qwen2/3, gemma, …) share names and often widths (Llama-3-8B and
Mistral-7B are the same shape), so there the base model named in
``adapter_config.json`` decides when it fits the names, and a table of released
sizes otherwise — and with neither, the architecture is left open.
"""

from __future__ import annotations

from collections.abc import Sequence

#: name fragments (flattened with "_") that only causal-LM decoder layers have, and the scheme they mean
MARKERS = (("attn_c_attn", "gpt2"), ("mlp_c_fc", "gpt2"), ("gpt_neox_layers", "gpt-neox"),
           ("self_attention_query_key_value", "bloom/falcon"), ("attention_query_key_value", "gpt-neox"),
           ("self_attn_qkv_proj", "phi3"), ("mlp_gate_up_proj", "phi3"), ("decoder_layers", "opt"),
           ("self_attn_dense", "phi"), ("self_attn_q_proj", "llama-style"), ("self_attn_o_proj", "llama-style"),
           ("mlp_gate_proj", "llama-style"), ("mlp_down_proj", "llama-style"))
#: architectures a config's base model may name, and the naming scheme each uses
NAMED = (("mixtral", "mixtral", "llama-style"), ("mistral", "mistral", "llama-style"),
         ("qwen3", "qwen3", "llama-style"), ("qwen2", "qwen2", "llama-style"), ("qwen", "qwen2", "llama-style"),
         ("gemma", "gemma", "llama-style"), ("llama", "llama", "llama-style"), ("deepseek", "llama", "llama-style"),
         ("phi-3", "phi3", "phi3"), ("phi3", "phi3", "phi3"), ("phi-4", "phi3", "phi3"), ("phi", "phi", "phi"),
         ("gpt2", "gpt2", "gpt2"), ("distilgpt2", "gpt2", "gpt2"), ("pythia", "gpt-neox", "gpt-neox"),
         ("gpt-neox", "gpt-neox", "gpt-neox"), ("falcon", "falcon", "bloom/falcon"),
         ("bloom", "bloom", "bloom/falcon"), ("opt-", "opt", "opt"))
#: released Llama-style sizes: (hidden, q_proj out, k_proj out, gate/up out) -> architectures of that shape
SIZES = {
    (2048, 2048, 256, 5632): ("llama",),  # TinyLlama 1.1B
    (4096, 4096, 4096, 11008): ("llama",),  # Llama 2 7B
    (5120, 5120, 5120, 13824): ("llama",),  # Llama 2 13B
    (4096, 4096, 1024, 14336): ("llama", "mistral"),  # Llama 3/3.1 8B = Mistral 7B
    (2048, 2048, 512, 8192): ("llama",),  # Llama 3.2 1B
    (3072, 3072, 1024, 8192): ("llama",),  # Llama 3.2 3B
    (8192, 8192, 1024, 28672): ("llama",),  # Llama 3 70B
    (896, 896, 128, 4864): ("qwen2",), (1536, 1536, 256, 8960): ("qwen2",), (2048, 2048, 256, 11008): ("qwen2",),
    (3584, 3584, 512, 18944): ("qwen2",), (5120, 5120, 1024, 13824): ("qwen2",),  # Qwen2/2.5 0.5B-14B
    (1024, 2048, 1024, 3072): ("qwen3",), (2560, 4096, 1024, 9728): ("qwen3",),  # Qwen3 0.6B, 4B
    (4096, 4096, 1024, 12288): ("qwen3",),  # Qwen3 8B
    (3072, 4096, 4096, 24576): ("gemma",), (2048, 2048, 256, 16384): ("gemma",),  # Gemma 7B, 2B
    (2304, 2048, 1024, 9216): ("gemma",), (3584, 4096, 2048, 14336): ("gemma",),  # Gemma 2 2B, 9B
}


def llm_arch(modules: Sequence[tuple[str, int]], widths, base_name: str | None) -> tuple[str | None, str, list[str]]:
    """(architecture or None, evidence words, warnings) for an adapter's decoder-layer modules.

    ``modules`` are (flattened name, number); ``widths(number)`` gives (in, out, ndim).
    """
    schemes: dict[str, int] = {}
    by_leaf: dict[str, tuple[int, int]] = {}
    for flat, number in modules:
        for fragment, scheme in MARKERS:
            if fragment in flat:
                schemes.setdefault(scheme, number)
                break
        for leaf in ("q_proj", "k_proj", "gate_proj", "c_attn", "query_key_value", "qkv_proj"):
            if flat.endswith(leaf) and leaf not in by_leaf and (w := widths(number)):
                by_leaf[leaf] = (w[0], w[1])
    scheme = _scheme(schemes)
    hidden = next((w[0] for w in by_leaf.values()), None)
    words = f"{scheme} layers, hidden {hidden}" if hidden else f"{scheme} layers"
    warnings: list[str] = []
    named = _named(base_name)
    if named is not None:
        arch, named_scheme = named
        if named_scheme == scheme:
            return arch, f"{words}; adapter_config.json base model {base_name!r} agrees", warnings
        warnings.append(f"adapter_config.json names {base_name!r} ({arch}) but the layers are {scheme}; "
                        "the layers win")
    if scheme != "llama-style":
        return (None if "/" in scheme else scheme), words, warnings
    key = (hidden, by_leaf.get("q_proj", (0, 0))[1], by_leaf.get("k_proj", (0, 0))[1],
           by_leaf.get("gate_proj", (0, 0))[1])
    fits = SIZES.get(key, ())
    if len(fits) == 1:
        return fits[0], f"{words}: the widths of a released {fits[0]} size", warnings
    if fits:
        return None, f"{words}: the widths of {' and '.join(fits)} alike", warnings
    return None, f"{words} (llama, mistral, qwen2, gemma and others share these names)", warnings


def _scheme(schemes: dict[str, int]) -> str:
    for scheme in ("gpt2", "gpt-neox", "bloom/falcon", "phi3", "opt", "phi"):
        if scheme in schemes:
            return scheme
    return "llama-style"


def _named(base_name: str | None) -> tuple[str, str] | None:
    if not base_name:
        return None
    low = base_name.lower().rsplit("/", 1)[-1]
    return next(((arch, scheme) for word, arch, scheme in NAMED if word in low), None)
