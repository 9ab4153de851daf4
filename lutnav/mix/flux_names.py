"""Flux.1 / Chroma LoRAs in diffusers names → the original (BFL) layers, exactly.

diffusers splits what the original model fuses: ``img_attn.qkv`` is ``to_q``,
``to_k`` and ``to_v`` stacked, and a single block's ``linear1`` is q, k, v and the
MLP input stacked. Stacking LoRAs along those rows is exact with a block-diagonal
``up``: ``[ΔW_q; ΔW_k; ΔW_v] = blockdiag(s_q·up_q, s_k·up_k, s_v·up_v) @ [down_q; down_k; down_v]``
(rank adds up). Layers a file does not adapt are zero rows. The rest is a rename
(modulation chunks come in the same order: shift, scale, gate), as diffusers' own
single-file converter maps them.
"""

from __future__ import annotations

from .tensors import Factors, as_float, numpy

#: diffusers layer -> (original layer, row offset, rows), in multiples of the hidden width
_DOUBLE = {"attn_to_q": ("img_attn_qkv", 0, 1), "attn_to_k": ("img_attn_qkv", 1, 1),
           "attn_to_v": ("img_attn_qkv", 2, 1), "attn_add_q_proj": ("txt_attn_qkv", 0, 1),
           "attn_add_k_proj": ("txt_attn_qkv", 1, 1), "attn_add_v_proj": ("txt_attn_qkv", 2, 1),
           "attn_to_out_0": ("img_attn_proj", 0, 1), "attn_to_add_out": ("txt_attn_proj", 0, 1),
           "ff_net_0_proj": ("img_mlp_0", 0, 4), "ff_net_2": ("img_mlp_2", 0, 1),
           "ff_context_net_0_proj": ("txt_mlp_0", 0, 4), "ff_context_net_2": ("txt_mlp_2", 0, 1),
           "norm1_linear": ("img_mod_lin", 0, 6), "norm1_context_linear": ("txt_mod_lin", 0, 6)}
_SINGLE = {"attn_to_q": ("linear1", 0, 1), "attn_to_k": ("linear1", 1, 1), "attn_to_v": ("linear1", 2, 1),
           "proj_mlp": ("linear1", 3, 4), "proj_out": ("linear2", 0, 1), "norm_linear": ("modulation_lin", 0, 3)}
_ROWS = {"img_attn_qkv": 3, "txt_attn_qkv": 3, "linear1": 7}  # fused layers' height in hidden widths
_GROUPS = {"transformer_blocks": ("double_blocks", _DOUBLE), "single_transformer_blocks": ("single_blocks", _SINGLE)}


def original_name(flat: str) -> tuple[str, int, int] | None:
    """(original flat module, row offset, rows) in hidden widths, for a diffusers Flux block module."""
    for group, (new_group, table) in _GROUPS.items():
        if flat.startswith(group + "_"):
            index, _, layer = flat[len(group) + 1:].partition("_")
            if index.isdigit() and layer in table:
                name, offset, rows = table[layer]
                return f"{new_group}_{index}_{name}", offset, rows
    return None


def to_original(modules: dict, names: dict) -> tuple[dict, dict]:
    """The same LoRA with every diffusers-named Flux block module moved onto the original layers.

    ``modules``: module -> Factors; ``names``: module -> DitKey as written. Returns new dicts;
    modules that are not Flux block layers pass through unchanged.
    """
    from catalog.detect.dit_keys import DitKey

    np = numpy()
    out, out_names, fused = {}, {}, {}
    for module, f in modules.items():
        target = original_name(module[1]) if module[0] == "transformer" else None
        if target is None:
            out[module] = f
            if module in names:
                out_names[module] = names[module]
            continue
        fused.setdefault(target[0], []).append((target[1], target[2], f))
    for name, parts in fused.items():
        hidden = parts[0][2].up.shape[0] // parts[0][1]
        height = _ROWS.get(name.split("_", 3)[-1], parts[0][1]) * hidden
        downs = []
        col = 0
        total = sum(f.rank for _, _, f in parts)
        up = np.zeros((height, total), np.float32)
        for offset, rows, f in sorted(parts, key=lambda p: p[0]):
            downs.append(as_float(f.down, f.dtype, np.float32).reshape(f.rank, -1))
            up[offset * hidden: offset * hidden + f.up.shape[0], col: col + f.rank] = \
                as_float(f.up, f.dtype, np.float32).reshape(f.up.shape[0], f.rank) * f.scale
            col += f.rank
        module = ("transformer", name)
        out[module] = Factors(np.concatenate(downs), up, float(total), "F32")  # alpha = rank: scale 1
        out_names[module] = DitKey("kohya", name, "down")
    return out, out_names
