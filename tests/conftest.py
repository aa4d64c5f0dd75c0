"""Shared fixtures: a small byte-level tokenizer and tiny random-weight models of six families."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    BloomConfig,
    Gemma3TextConfig,
    GPT2Config,
    LlamaConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    XGLMConfig,
)

from langneurons.io import read_jsonl  # noqa: F401  (the tests' reader: lines end at "\n" only, not U+2028)
from langneurons.model import LoadedModel

SHARED = Path(__file__).resolve().parents[2] / "shared"
PAPER_SETS = SHARED / "data" / "paper-langsets"

SAMPLE = {
    "en": ["The cat sleeps on the warm windowsill.", "We walked to the old harbour at dawn.",
           "Please close the door when you leave.", "How many trains run on Sundays?",
           "The library opens at nine every morning.", "Rain is expected over the hills tonight."],
    "de": ["Die Katze schläft auf der warmen Fensterbank.", "Wir gingen im Morgengrauen zum alten Hafen.",
           "Bitte schließen Sie die Tür, wenn Sie gehen.", "Wie viele Züge fahren am Sonntag?",
           "Die Bibliothek öffnet jeden Morgen um neun.", "Über den Hügeln wird heute Nacht Regen erwartet."],
    "fr": ["Le chat dort sur le rebord chaud de la fenêtre.", "Nous avons marché jusqu'au vieux port à l'aube.",
           "Fermez la porte en partant, s'il vous plaît.", "Combien de trains circulent le dimanche ?",
           "La bibliothèque ouvre à neuf heures chaque matin.", "De la pluie est attendue sur les collines ce soir."],
    "zh": ["猫在温暖的窗台上睡觉。", "我们在黎明时走到了老港口。", "离开时请关上门。",
           "星期天有多少班火车？", "图书馆每天早上九点开门。", "今晚山上预计会下雨。"],
}

FAMILIES = ["llama", "gemma3", "gpt2", "bloom", "xglm", "qwen2"]


def make_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on the sample sentences, adding BOS like Llama/Gemma."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "<eos>", "<bos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([s for v in SAMPLE.values() for s in v] * 3, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", tok.token_to_id("<bos>"))]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>", model_max_length=128)


def make_config(family: str, vocab: int):
    common = dict(vocab_size=vocab, bos_token_id=2, eos_token_id=1, pad_token_id=0)
    if family == "llama":
        return LlamaConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, **common)
    if family == "gemma3":
        return Gemma3TextConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=3,
                                num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                                max_position_embeddings=128, sliding_window=8, **common)
    if family == "gpt2":
        return GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=128, **common)
    if family == "bloom":
        return BloomConfig(hidden_size=32, n_layer=2, n_head=4, **common)
    if family == "xglm":
        return XGLMConfig(d_model=32, ffn_dim=48, num_layers=2, attention_heads=4,
                          max_position_embeddings=128, decoder_start_token_id=2, **common)
    if family == "qwen2":
        return Qwen2Config(hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, **common)
    raise ValueError(family)


def make_model(family: str, seed: int = 0) -> LoadedModel:
    tokenizer = make_tokenizer()
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(make_config(family, len(tokenizer)))
    model.eval()
    return LoadedModel(model, tokenizer, f"tiny-{family}", torch.device("cpu"), "float32")


@pytest.fixture(params=FAMILIES)
def tiny(request) -> LoadedModel:
    return make_model(request.param)


@pytest.fixture
def tiny_llama() -> LoadedModel:
    return make_model("llama")


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    """A folder of <lang>.txt files with the sample sentences."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    for lang, sentences in SAMPLE.items():
        (folder / f"{lang}.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")
    return folder


@pytest.fixture
def saved_tiny(tmp_path: Path) -> Path:
    """A tiny Llama saved as a local model folder, loadable through `--model PATH`."""
    loaded = make_model("llama")
    folder = tmp_path / "tiny-llama"
    loaded.model.save_pretrained(folder)
    loaded.tokenizer.save_pretrained(folder)
    return folder
