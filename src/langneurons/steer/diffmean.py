"""DiffMean steering defaults, the recommended setting of a run, and the llama.cpp control-vector export.

`default_setting` is what `generate --method diffmean` uses without flags: the frontier's
recommendation written in the RUN (`RUN/frontier/<L>-diffmean-recommended.json`) when there is one,
else the documented defaults (docs/steering.md): clamp:1 at the blocks from 2/3 to 9/10 of the depth
(CLaS-Bench and ReCoVeR find language directions steer best in the later-middle layers), norms
restored, on a guarded three-token opening whose first token begins one of the language's own
sentences: the shape the shared search chose on Gemma-3-270M.
`export_control_vector` writes a setting as the GGUF that llama.cpp's `--control-vector` reads. Torch-free.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import LangneuronsError
from ..find.diffmean import Directions
from .apply import shift_vectors, unit_directions
from .decoding import Decoding
from .intervene import (
    Intervention,
    Setting,
    is_opening,
    load_interventions,
    parse_blocks,
    parse_strength,
    recommended_path,
)

DEPTH = 2 / 3  # a single block's default: this share of the depth
DEFAULT_ALPHA = 0.1  # in units of the block's typical per-token hidden-state norm: about ‖v‖ itself
DEFAULT_VALUE = "clamp:1"  # each edited state raised along v̂ to the language's own mean level
DEFAULT_RESTORE = True  # rescale each edited state to its norm before the edit (ReCoVeR)
OPENING_RULES = Decoding(guard=True, start=True, own_starts=True)  # the default opening's decoding rules
DEPTHS = (0.5, 2 / 3, 0.8)  # the frontier's default single blocks, as shares of the depth
OPENING = "prefix:3"  # the default positions: the first three tokens, then the model goes on unedited
SPAN = (2 / 3, 0.9)  # the default range of blocks, from and to these shares of the depth
HOLDS = ("off", "clamp:0.5", "clamp:1")  # the frontier's default holds on the rest of the text ("off": none)
HOLD_POSITIONS = "generated"  # where a hold acts: every new token, the opening's included


def block_at(share: float, n_blocks: int) -> int:
    """The block at `share` of the depth, within the blocks."""
    return min(n_blocks - 1, max(0, round(share * n_blocks)))


def default_block(n_blocks: int) -> int:
    """The default single block: round(DEPTH · n_blocks) (12 of Gemma-3-270M's 18)."""
    return block_at(DEPTH, n_blocks)


def default_span(n_blocks: int) -> str:
    """The default range of blocks, SPAN[0] to SPAN[1] of the depth (12-16 of Gemma-3-270M's 18)."""
    low, high = (block_at(share, n_blocks) for share in SPAN)
    return f"{low}-{high}" if high > low else str(low)


def default_blocks(n_blocks: int) -> list[str]:
    """The frontier's default block axis: the blocks at DEPTHS of the depth, each alone, and the
    default range when it holds two or more blocks."""
    singles = [str(b) for b in dict.fromkeys(block_at(share, n_blocks) for share in DEPTHS)]
    span = default_span(n_blocks)
    return singles + ([span] if "-" in span else [])


def default_setting(run: Path, language: str, n_blocks: int, fingerprint: str | None = None) -> Setting:
    """The frontier's DiffMean recommendation for `language` in the RUN, else the documented defaults:
    clamp:1 at the default range of blocks, norms restored, on a guarded three-token opening that starts
    like the language's sentences."""
    path = recommended_path(run, language, "diffmean")
    if path.exists():
        setting = load_interventions(path, fingerprint)
        if setting.interventions and setting.interventions[0].method == "diffmean":
            return setting
    return Setting((Intervention(language, value=DEFAULT_VALUE, positions=OPENING, blocks=default_span(n_blocks),
                                 method="diffmean", restore_norm=DEFAULT_RESTORE),), OPENING_RULES)


def with_hold(setting: Setting, value: str) -> Setting:
    """`setting` (a DiffMean opening) followed by a hold: the same direction, blocks and norm rule with
    `value` (a clamp:β floor, or add:α) on the rest of the text, so that the text the opening started
    in the language cannot drift out of it; `value` "off" returns the setting as it is."""
    if check_hold(value) == "off":
        return setting
    hold = replace(setting.interventions[0], value=value, positions=HOLD_POSITIONS)
    return Setting((*setting.interventions, hold), setting.decoding)


def check_hold(value: str) -> str:
    """`value` if it is a hold: off, or a DiffMean edit (clamp:β, add:α); else a clear error."""
    if value != "off":
        try:
            parse_strength(value)
        except LangneuronsError as error:
            raise LangneuronsError(f"hold {value!r}: off, or {error}") from None
    return value


def with_flags(setting: Setting, blocks: str = "", value: str | None = None, restore_norm: bool | None = None,
               subtract: str | None = None, positions: str | None = None, hold: str | None = None) -> Setting:
    """`setting`'s DiffMean intervention with the fields the user gave replaced (`value`: add:α or clamp:β);
    a hold on the rest of the text (`with_hold`) follows its blocks, norm rule and subtracted language,
    and `hold` replaces it ("off": none); positions that are no opening drop the setting's decoding rules
    and its hold, which serve an opening."""
    iv, *rest = setting.interventions
    shared = {k: v for k, v in {"blocks": blocks or None, "restore_norm": restore_norm,
                                "subtract": subtract}.items() if v is not None}
    own = {k: v for k, v in {"value": value, "positions": positions}.items() if v is not None}
    holds = [r for r in rest if is_hold(r)]
    rest = [r for r in rest if not is_hold(r)]
    if positions is not None and not is_opening(positions):
        if hold not in (None, "off"):
            raise LangneuronsError(f"hold {hold}: a hold follows an opening (positions first:K or prefix:K), "
                                   f"not positions {positions}")
        return Setting((replace(iv, **shared, **own), *rest))
    opening = Setting((replace(iv, **shared, **own), *rest), setting.decoding)
    if hold is not None:
        return with_hold(opening, hold)
    return Setting((*opening.interventions, *(replace(r, **shared) for r in holds)), opening.decoding)


def is_hold(iv: Intervention) -> bool:
    """Whether `iv` is a DiffMean hold on the rest of the text (`with_hold`)."""
    return iv.method == "diffmean" and iv.positions == HOLD_POSITIONS


def control_vector(directions: Directions, iv: Intervention) -> dict[int, np.ndarray]:
    """Block → the float32 vector llama.cpp adds to that block's output: α·typical_norm·v̂ for `add:α`,
    as steering adds it. llama.cpp can only add, so a `clamp:β` becomes the addition that moves a state
    at the other languages' mean exactly as the clamp does: β·(v·v̂)·v̂ (β·‖v‖·v̂ without `subtract`)."""
    if iv.method != "diffmean":
        raise LangneuronsError(f"export: method {iv.method} edits neurons, not the residual stream; only a "
                               "diffmean setting is a control vector")
    blocks = parse_blocks(iv.blocks) or set()
    if 0 in blocks:
        # llama.cpp has no control-vector slot for layer 0 (see export_control_vector)
        raise LangneuronsError("blocks: llama.cpp cannot add a control vector at block 0 (direction.0 is "
                               "refused by its loader); choose blocks from 1")
    kind, beta = parse_strength(iv.value)
    if kind == "add":
        return shift_vectors(iv, directions)
    return {block: (beta * float(v @ unit) * unit).astype(np.float32)
            for block, (v, unit) in unit_directions(iv, directions).items()}


def export_control_vector(path: Path, directions: Directions, iv: Intervention, model_hint: str) -> dict[int, np.ndarray]:
    """Write `iv` (a DiffMean intervention) as a llama.cpp control-vector GGUF; returns what was written.

    llama.cpp's conventions, checked in its source (ggerganov/llama.cpp, common/common.cpp
    `common_control_vector_load_one` and src/llama-adapter.cpp `llama_control_vector_apply`/`apply_to`):
    - general.architecture "controlvector", `controlvector.model_hint` and `controlvector.layer_count`;
    - one 1-D float32 tensor `direction.<il>` of n_embd per layer; il = 0 is refused ("invalid (zero)
      direction tensor layer index": there is never a tensor for layer 0);
    - the loader adds each file's tensors times its scale (`--control-vector` scale 1,
      `--control-vector-scaled FILE S`) and stores layer il at offset (il − 1)·n_embd;
    - `apply_to(cur, il)` adds the vector as-is to the output of graph layer il (0-based), after
      the block's residual add (`build_cvec`), at every position, prompt and generated alike.
    So HF block ℓ's output (what `Shift` edits) ↔ `direction.ℓ`, scale 1 reproduces `add:α` exactly,
    positions are always `all`, and there is no norm restoration (`restore_norm` is not exported); a
    `clamp:β` is exported as the fixed addition `control_vector` gives it.
    As llama.cpp's own cvector-generator writes it: a tensor for every layer 1..n−1 (zeros outside the
    chosen blocks) and layer_count = n − 1, the number of tensors (an int32; the loader ignores it).
    """
    from gguf import GGUFWriter

    vectors = control_vector(directions, iv)
    writer = GGUFWriter(str(path), "controlvector")
    writer.add_string("controlvector.model_hint", model_hint)
    writer.add_int32("controlvector.layer_count", len(directions.blocks) - 1)
    for block in range(1, len(directions.blocks)):
        writer.add_tensor(f"direction.{block}", vectors.get(block, np.zeros(directions.hidden, np.float32)))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return vectors


def diffmean_grid(language: str, values: list[str], blocks: list[str], restores: list[bool],
                  positions: list[str], guards: list[bool] | tuple[bool, ...] = (True,),
                  starts: list[bool] | tuple[bool, ...] = (False,), subtract: str = "") -> list[Setting]:
    """The frontier's DiffMean points: every value (add:α, clamp:β) × block(s) × norm restoration ×
    positions, an opening (first:K, prefix:K) with each of `guards` and `starts` (the start rule from
    the language's own sentences), other positions with neither."""
    return [Setting((Intervention(language, value=value, positions=pos, blocks=block, method="diffmean",
                                  restore_norm=restore, subtract=subtract),),
                    Decoding(guard=guard, start=start, own_starts=start))
            for block in blocks for restore in restores for value in values for pos in positions
            for guard in (dict.fromkeys(guards) if is_opening(pos) else (False,))
            for start in (dict.fromkeys(starts) if is_opening(pos) else (False,))]
