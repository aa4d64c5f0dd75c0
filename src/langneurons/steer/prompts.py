"""Prompts for steering on real requests: the user's own files, the built-in translation pairs and
request set, and chat templates (docs/steering.md, "Prompts").

Torch-free. The trap: a chat template writes its own BOS, so a templated prompt must be encoded
without special tokens (`Prompt.special_tokens`), or the model reads two.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from ..data import builtin_groups, parse_json_line, read_file, read_lines, saved_dataset
from ..errors import LangneuronsError

LANGUAGE_NAMES = {"en": "English", "de": "German", "fr": "French", "es": "Spanish", "zh": "Chinese",
                  "ja": "Japanese", "ko": "Korean", "ru": "Russian", "it": "Italian", "pt": "Portuguese",
                  "nl": "Dutch", "ar": "Arabic", "hi": "Hindi"}
PAPER_PROMPT = "Translate an English sentence into a target language.\nEnglish: {source}\nTarget Language:"
NAMED_PROMPT = "Translate an English sentence into {name}.\nEnglish: {source}\n{name}:"
REQUEST_FORMS = ("{request} Reply in {name}.", "Answer in {name} only. {request}",
                 "{request} Please respond in {name}.", "Write your answer in {name}. {request}")
QA_FRAME = "Q: {request}\nA:"  # how a base model (no chat template) is asked
# where the answer to a Q/A frame ends: the transcript's next turn, a question or another answer, with
# the ASCII or the full-width colon (Chinese and Japanese answers write "Q：")
TURNS = ("\nQ:", "\nA:", "\nQ：", "\nA：")
SPLITS = ("choose", "heldout", "all")
# the example turns a prompt can be shown first (`example_turns`): generic requests, answered in the language
EXAMPLE_REQUESTS = ("Tell me one piece of news.", "Describe something you saw today.")


@dataclass(frozen=True)
class Prompt:
    """One prompt: its id, its text, what a good answer looks like (`reference`, when known) and what
    the answer should carry over (`source`: the English sentence or request; the content score
    recovers it). `special_tokens`: encode with the tokenizer's BOS (False once a chat template
    has written it)."""

    id: str
    text: str
    reference: str | None = None
    source: str | None = None
    special_tokens: bool = True

    def record(self) -> dict:
        """The fields a sample record carries about its prompt."""
        fields = {"prompt_id": self.id, "prompt": self.text}
        if self.reference is not None:
            fields["reference"] = self.reference
        if self.source is not None:
            fields["source"] = self.source
        return fields


def language_name(language: str) -> str:
    """The English name of a language code, as prompts write it."""
    if language not in LANGUAGE_NAMES:
        raise LangneuronsError(f"language {language!r}: no English name known for it; prompts that name the "
                               f"language exist for {', '.join(sorted(LANGUAGE_NAMES))}")
    return LANGUAGE_NAMES[language]


def split_of(prompt_id: str) -> str:
    """`choose` or `heldout`, fixed by a hash of the id (about half each): settings are chosen on one
    part and reported on the other."""
    return "choose" if hashlib.sha256(prompt_id.encode()).digest()[0] % 2 == 0 else "heldout"


def in_split(prompts: list[Prompt], split: str) -> list[Prompt]:
    """The prompts of one part (`all`: every prompt)."""
    if split not in SPLITS:
        raise LangneuronsError(f"split {split!r}: one of {', '.join(SPLITS)}")
    return prompts if split == "all" else [p for p in prompts if split_of(p.id) == split]


def translation_prompts(language: str, source: str = "heldout", named: bool = False,
                        limit: int | None = None) -> list[Prompt]:
    """The paper's translation prompt (or one that names the target, `named`) for each pair of `source`:
    `heldout` (the built-in held-out pairs), `heldout:choose` / `heldout:heldout` (its two parts) or
    a JSONL file of {"en", "<language>"} pairs."""
    name, _, split = source.partition(":")
    template = NAMED_PROMPT if named else PAPER_PROMPT
    if name == "heldout":
        pairs = [(g["id"], g["en"], g[language]) for g in builtin_groups()
                 if g["split"] == "heldout" and language in g]
        if not pairs:
            raise LangneuronsError(f"language {language}: not in the built-in corpus")
    else:
        split, pairs = "", pair_lines(Path(source), language)
    if limit is not None and limit < 1:
        raise LangneuronsError(f"--limit {limit}: must be 1 or more (or leave it out for all sentences)")
    prompts = [Prompt(id, template.format(source=en, name=language_name(language) if named else ""), ref, en)
               for id, en, ref in pairs]
    return in_split(prompts, split or "all")[:limit]


def pair_lines(path: Path, language: str) -> list[tuple[str, str, str]]:
    """(id, English, reference) of each line of a JSONL file of {"en", "<language>"[, "id"]} pairs."""
    if not path.is_file():
        raise LangneuronsError(f"--translate {path}: no such file (or use heldout)")
    pairs = []
    for number, line in read_lines(path):
        obj = parse_json_line(path, number, line)
        if not isinstance(obj, dict) or "en" not in obj or language not in obj:
            raise LangneuronsError(f'{path}:{number}: needs keys "en" and "{language}"')
        if not all(isinstance(obj[k], str) and obj[k].strip() for k in ("en", language)):
            raise LangneuronsError(f'{path}:{number}: "en" and "{language}" must be non-empty text')
        pairs.append((str(obj.get("id", f"line-{number}")), obj["en"], obj[language]))
    if not pairs:
        raise LangneuronsError(f"--translate {path}: the file has no sentence pairs; add JSON lines "
                               f'{{"en": ..., "{language}": ...}}')
    return pairs


def builtin_requests() -> list[dict]:
    """The project's request set: English requests on the corpus' 12 domains (CORPUS.md)."""
    text = resources.files("langneurons").joinpath("corpus/requests.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def request_prompts(language: str, split: str = "all", frame: str = QA_FRAME) -> list[Prompt]:
    """The built-in requests asking for an answer in `language` (four wordings, the instruction first
    or last, picked by the request's place in the set), in `frame` (a Q/A frame: the embedded model
    has no chat template), of one part of the set."""
    name = language_name(language)
    prompts = [Prompt(r["id"], frame.format(request=REQUEST_FORMS[i % len(REQUEST_FORMS)].format(
        request=r["request"], name=name)), source=r["request"]) for i, r in enumerate(builtin_requests())]
    return in_split(prompts, split)


def load_prompts(spec: str) -> list[Prompt]:
    """The user's prompts: `requests:L[:split]` (the built-in set), `hf:DIR` (a `datasets` dataset saved
    to disk with a `prompt` column), a `.jsonl` of {"prompt"[, "id", "reference"]}, a `.csv` with a
    `prompt` column, or a `.txt` of one prompt per line (`\\n` in a line is a newline)."""
    if spec.startswith("requests:"):
        language, _, split = spec[len("requests:"):].partition(":")
        return request_prompts(language, split or "all")
    if spec.startswith("hf:"):
        return hf_prompts(Path(spec[3:]))
    path = Path(spec)
    if not path.is_file():
        raise LangneuronsError(f"--prompts {spec}: no such file (a .txt, .jsonl or .csv file, hf:DIR or "
                               "requests:L)")
    suffix = path.suffix.lower()
    if suffix not in (".txt", ".jsonl", ".csv"):
        raise LangneuronsError(f"--prompts {path}: a .txt (one prompt per line), .jsonl or .csv file")
    prompts = {".txt": txt_prompts, ".jsonl": jsonl_prompts, ".csv": csv_prompts}[suffix](path)
    if not prompts:
        raise LangneuronsError(f"--prompts {path}: no prompts in the file")
    ids = [p.id for p in prompts]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise LangneuronsError(f"--prompts {path}: prompt ids must be unique; repeated: {repeated[:5]}")
    return prompts


def txt_prompts(path: Path) -> list[Prompt]:
    return [Prompt(f"line-{number}", line.replace("\\n", "\n")) for number, line in read_lines(path)
            if line.strip()]


def jsonl_prompts(path: Path) -> list[Prompt]:
    prompts = []
    for number, line in read_lines(path):
        obj = parse_json_line(path, number, line)
        prompts.append(prompt_from(obj, f"{path}:{number}", f"line-{number}"))
    return prompts


def csv_prompts(path: Path) -> list[Prompt]:
    try:
        text = read_file(path).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LangneuronsError(f"{path}: not valid UTF-8 (byte {exc.start}); save it as UTF-8") from None
    reader = csv.DictReader(io.StringIO(text))
    if "prompt" not in (reader.fieldnames or []):
        raise LangneuronsError(f"{path}: needs a `prompt` column (has {reader.fieldnames})")
    return [prompt_from(row, f"{path}:{number}", f"line-{number}")
            for number, row in enumerate(reader, start=2) if (row.get("prompt") or "").strip()]


def hf_prompts(path: Path) -> list[Prompt]:
    dataset = saved_dataset(path, ("prompt",), "prompts")
    return [prompt_from(row, f"hf:{path} row {index}", f"row-{index}") for index, row in enumerate(dataset)]


def prompt_from(obj: object, where: str, default_id: str) -> Prompt:
    """A prompt from one JSON object / CSV row / dataset row, its fields checked."""
    if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str) or not obj["prompt"].strip():
        raise LangneuronsError(f'{where}: needs a non-empty "prompt" text')
    for key in ("reference", "source"):
        if obj.get(key) is not None and not isinstance(obj[key], str):
            raise LangneuronsError(f'{where}: "{key}" must be text')
    given = obj.get("id")
    return Prompt(default_id if given in (None, "") else str(given), obj["prompt"], obj.get("reference") or None,
                  obj.get("source") or None)


def example_turns(language: str, sentences: list[str]) -> tuple[tuple[str, str], ...]:
    """Two turns answered in `language` that prompts can be shown first (docs/steering.md, "Requests"):
    generic English requests naming the language, answered by the first and the middle one of
    `sentences` (the run's sentences of the language)."""
    if len(sentences) < 2:
        raise LangneuronsError(f"example turns in {language}: the run has {len(sentences)} sentence(s) of it, "
                               "two are needed")
    name = language_name(language)
    return tuple((f"{request} Reply in {name}.", answer)
                 for request, answer in zip(EXAMPLE_REQUESTS, (sentences[0], sentences[len(sentences) // 2])))


def with_examples(prompts: list[Prompt], turns: tuple[tuple[str, str], ...]) -> list[Prompt]:
    """Each prompt after the example turns, as earlier Q/A turns of its transcript; the source stays
    the prompt's own (the content score recovers it, not the examples)."""
    shown = "".join(QA_FRAME.format(request=request) + f" {answer}\n\n" for request, answer in turns)
    return [replace(p, text=shown + p.text, source=p.source or p.text) for p in prompts]


def framed(prompts: list[Prompt], turns: tuple[tuple[str, str], ...] = (), tokenizer=None) -> list[Prompt]:
    """The prompts as the model reads them: after the example `turns` (if any), and as the user turn of
    the tokenizer's chat template when a `tokenizer` is given (`--chat-template`), else as given."""
    if tokenizer is not None:
        return templated(prompts, tokenizer, turns)
    return with_examples(prompts, turns) if turns else prompts


def templated(prompts: list[Prompt], tokenizer, turns: tuple[tuple[str, str], ...] = ()) -> list[Prompt]:
    """Each prompt as the user turn of the tokenizer's chat template, ready for the answer; `turns`
    (request, answer) come first as earlier turns of the chat. The source stays the prompt's own."""
    if not getattr(tokenizer, "chat_template", None):
        raise LangneuronsError("--chat-template: this model's tokenizer has no chat template; leave the option "
                               "out (prompts are then read as plain text) or use a model that has one")
    history = [{"role": role, "content": text} for request, answer in turns
               for role, text in (("user", request), ("assistant", answer))]
    return [replace(p, text=tokenizer.apply_chat_template([*history, {"role": "user", "content": p.text}],
                                                          tokenize=False, add_generation_prompt=True),
                    source=p.source or p.text, special_tokens=False)
            for p in prompts]
