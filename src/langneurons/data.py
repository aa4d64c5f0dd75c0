"""Corpora and the positive/negative sentence sets built from them (docs/method.md §1).

A corpus gives, per language, its own sentences (`positives`) and, optionally, per-language
negative lists (the paper's JSON format stores them). The trap: a sentence can be a positive for
one language and a negative for others, so the recording unit is the *unique* sentence.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import numpy as np

from .errors import LangneuronsError

LANG_CODE = re.compile(r"^[a-z]{2,3}([-_][A-Za-z0-9]{2,8})?\Z")  # \Z: "de\n" is no code
# keys of a parallel JSONL row that look like language codes but name row metadata; Indonesian
# ("id") rows use the {"lang": "id", "text": ...} shape
NOT_LANGUAGES = frozenset({"id", "idx", "uid", "url", "src", "tgt", "ref", "key", "doc", "tag", "set"})
BUILTIN_LANGUAGES = ("en", "de", "fr", "es", "zh", "ja")
SPLITS = ("find", "heldout")


@dataclass(frozen=True)
class Corpus:
    """Sentences per language, in file order, plus optional explicit negative lists."""

    name: str
    positives: dict[str, list[str]]
    # language -> other language -> its negatives from that language (paper format), else empty
    negatives: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    @property
    def languages(self) -> list[str]:
        return list(self.positives)

    def negatives_for(self, lang: str, other: str) -> list[str]:
        """Negatives of `lang` taken from language `other`."""
        if lang in self.negatives:
            return self.negatives[lang].get(other, [])
        return self.positives[other]


@dataclass(frozen=True)
class LabelSet:
    """Unique sentences and, per language, which of them are its positives and negatives."""

    languages: list[str]
    texts: list[str]  # unique sentences, in first-seen order
    lang: list[str]  # the language each unique sentence is written in
    positives: dict[str, np.ndarray]  # language -> indices into texts
    negatives: dict[str, np.ndarray]

    def indices_and_labels(self, lang: str) -> tuple[np.ndarray, np.ndarray]:
        """Rows of `lang`'s sentence set and their 0/1 labels (positives first)."""
        pos, neg = self.positives[lang], self.negatives[lang]
        labels = np.concatenate([np.ones(len(pos), bool), np.zeros(len(neg), bool)])
        return np.concatenate([pos, neg]), labels

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for lang in self.languages:
            h.update(f"{lang}|{self.positives[lang].tolist()}|{self.negatives[lang].tolist()}".encode())
        for text in self.texts:
            h.update(text.encode() + b"\x00")
        return h.hexdigest()

    def records(self) -> list[dict]:
        """One dict per unique sentence for `sentences.jsonl`."""
        pos_of: list[list[str]] = [[] for _ in self.texts]
        neg_of: list[list[str]] = [[] for _ in self.texts]
        for lang in self.languages:
            for i in self.positives[lang]:
                pos_of[i].append(lang)
            for i in self.negatives[lang]:
                neg_of[i].append(lang)
        return [
            {"id": i, "text": t, "lang": l, "positive_for": p, "negative_for": n}
            for i, (t, l, p, n) in enumerate(zip(self.texts, self.lang, pos_of, neg_of))
        ]


def build_labels(corpus: Corpus, languages: list[str] | None = None, n: int | None = None) -> LabelSet:
    """Positives = first `n` sentences of each language; negatives = first `n` of each other one.

    Every list entry is one sample with its own label, as in the paper's code: a text listed
    twice counts twice, and a text listed in two languages (so both a positive and a negative of
    the same language) keeps both labels, with a warning. Each text is still recorded once.
    """
    languages = check_languages(corpus, languages)
    if n is not None and n < 1:
        raise LangneuronsError(f"--positives {n}: must be at least 1")
    index: dict[str, int] = {}
    texts: list[str] = []
    lang_of: list[str] = []

    def rows(sentences: list[str], lang: str) -> np.ndarray:
        for text in sentences:
            if text not in index:
                index[text] = len(texts)
                texts.append(text)
                lang_of.append(lang)
        return np.array([index[t] for t in sentences], dtype=np.int64)

    positives = {l: rows(corpus.positives[l][:n], l) for l in languages}
    negatives = {
        l: np.concatenate([rows(corpus.negatives_for(l, o)[:n], o) for o in languages if o != l])
        for l in languages
    }
    empty = [l for l in languages if not len(negatives[l])]
    if empty:
        raise LangneuronsError(
            f"corpus {corpus.name}: language(s) {', '.join(empty)} have no negatives from the other "
            f"chosen languages ({', '.join(languages)}); in a paper set each <lang>.json needs a "
            "negative block of the other languages' sentences, or choose --languages that have them"
        )
    both = sum(len(np.intersect1d(positives[l], negatives[l])) for l in languages)
    if both:
        warnings.warn(
            f"{both} sentence(s) are both a positive and a negative of the same language (the "
            "same text is listed under two languages); as in the paper's code each listing "
            "counts as one sample with its own label",
            stacklevel=2,
        )
    return LabelSet(languages, texts, lang_of, positives, negatives)


def check_languages(corpus: Corpus, languages: list[str] | None) -> list[str]:
    """Validate a --languages choice against the corpus; default: all of its languages."""
    if languages is None:
        languages = corpus.languages
    unknown = [l for l in languages if l not in corpus.positives]
    if unknown:
        raise LangneuronsError(
            f"--languages: {', '.join(unknown)} not in corpus {corpus.name} "
            f"(it has {', '.join(corpus.languages)})"
        )
    if len(set(languages)) < 2:
        raise LangneuronsError("--languages: at least two different languages are needed")
    for lang in languages:
        if len(corpus.positives[lang]) < 2:
            raise LangneuronsError(
                f"corpus {corpus.name}: language {lang} has {len(corpus.positives[lang])} "
                "sentence(s); at least 2 are needed"
            )
    return list(dict.fromkeys(languages))


# ---------------------------------------------------------------- loaders


def read_file(path: Path) -> bytes:
    """The bytes of a user's input file; a folder, an unreadable file or a symlink loop is named."""
    path = Path(path)
    try:
        return path.read_bytes()
    except IsADirectoryError:
        raise LangneuronsError(f"{path}: is a folder, not a file; rename or remove it") from None
    except PermissionError:
        raise LangneuronsError(f"{path}: cannot be read (permission denied); fix its permissions") from None
    except OSError as exc:
        raise LangneuronsError(
            f"{path}: cannot be read ({exc.strerror or exc}); check the file (a symlink loop or a "
            "broken link?)"
        ) from None


def check_text(text: str, where: str) -> str:
    """Refuse NUL characters in a sentence (a UTF-16 file read as UTF-8, a binary file)."""
    if "\x00" in text:
        raise LangneuronsError(
            f"{where}: holds NUL characters (column {text.index(chr(0)) + 1}); the file is probably "
            "UTF-16 or binary: save it as UTF-8 text"
        )
    return text


def read_lines(path: Path) -> list[tuple[int, str]]:
    """Non-empty stripped lines with their 1-based numbers; bad UTF-8 or NULs name file and line."""
    out = []
    for number, raw in enumerate(read_file(path).split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8").lstrip("\ufeff").strip()
        except UnicodeDecodeError as exc:
            raise LangneuronsError(
                f"{path}:{number}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column "
                f"{exc.start + 1}); save the file as UTF-8"
            ) from None
        if line:
            out.append((number, check_text(line, f"{path}:{number}")))
    return out


def check_code(code: str, where: str) -> str:
    if not LANG_CODE.match(code):
        raise LangneuronsError(
            f"{where}: {code!r} is not a language code (expected e.g. de, zh, pt-BR)"
        )
    return code


def load_folder(path: Path) -> Corpus:
    """A folder of `<lang>.txt` files, one sentence per line."""
    files_ = sorted(path.glob("*.txt"))
    if not files_:
        raise LangneuronsError(f"{path}: no <lang>.txt files in this folder")
    positives = {}
    for file in files_:
        if file.is_dir():
            raise LangneuronsError(f"{file}: is a folder, not a <lang>.txt file; rename or remove it")
        lang = check_code(file.stem, str(file))
        lines = read_lines(file)
        if not lines:
            raise LangneuronsError(f"{file}: the file is empty; add sentences or remove it")
        positives[lang] = [t for _, t in lines]
    return Corpus(str(path), positives)


def parse_json_line(path: Path, number: int, line: str) -> dict:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise LangneuronsError(f"{path}:{number}: malformed JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise LangneuronsError(f"{path}:{number}: expected a JSON object, got {type(obj).__name__}")
    return obj


def load_jsonl(path: Path) -> Corpus:
    """JSONL with `{"lang": .., "text": ..}` lines or parallel `{"en": .., "de": ..}` lines."""
    positives: dict[str, list[str]] = {}
    lines = read_lines(path)
    if not lines:
        raise LangneuronsError(f"{path}: the file is empty")
    ignored: dict[str, int] = {}
    for number, line in lines:
        obj = parse_json_line(path, number, line)
        if "lang" in obj or "text" in obj:
            if not isinstance(obj.get("lang"), str) or not isinstance(obj.get("text"), str):
                raise LangneuronsError(f'{path}:{number}: needs string fields "lang" and "text"')
            pairs = [(obj["lang"], obj["text"])]
        else:
            pairs = [(k, v) for k, v in obj.items() if is_language_key(k) and isinstance(v, str)]
            for key in obj.keys() - dict(pairs).keys():
                ignored[key] = ignored.get(key, 0) + 1
            if not pairs:
                raise LangneuronsError(
                    f'{path}:{number}: no "lang"/"text" fields and no language-code keys'
                )
        for lang, text in pairs:
            check_code(lang, f"{path}:{number}")
            if text.strip():
                positives.setdefault(lang, []).append(check_text(text.strip(), f"{path}:{number}"))
    if ignored:
        warnings.warn(
            f"{path}: ignored key(s) {', '.join(sorted(ignored))} (not language codes or not text; "
            f"languages read: {', '.join(positives)}); an Indonesian column is read from the "
            '{"lang": "id", "text": ...} shape',
            stacklevel=2,
        )
    return Corpus(str(path), positives)


def is_language_key(key: str) -> bool:
    """A parallel JSONL key that names a language (not row metadata such as id, url, src)."""
    return bool(LANG_CODE.match(key)) and key not in NOT_LANGUAGES


def load_paper(path: Path) -> Corpus:
    """The paper's JSON sets: `<lang>.json` with sentences.positive and sentences.negative.

    The negative list is consecutive equal blocks, one per other language, in a per-file order;
    each block's language is the one whose positives it shares most sentences with.
    """
    files_ = sorted(path.glob("*.json"))
    if not files_:
        raise LangneuronsError(f"{path}: no <lang>.json files (paper format) in this folder")
    positives, raw_negatives = {}, {}
    for file in files_:
        try:
            obj = json.loads(read_file(file).decode("utf-8"))
            pos, neg = obj["sentences"]["positive"], obj["sentences"]["negative"]
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise LangneuronsError(
                f"{file}: not in the paper format ({{'sentences': {{'positive': [...], "
                f"'negative': [...]}}}}): {exc}"
            ) from None
        lang = check_code(str(obj.get("concept", file.stem)), str(file))
        for where, texts in (("positive", pos), ("negative", neg)):
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise LangneuronsError(f"{file}: sentences.{where} must be a list of strings")
            for i, text in enumerate(texts):
                check_text(text, f"{file}: sentences.{where}[{i}]")
        positives[lang], raw_negatives[lang] = list(pos), list(neg)
    negatives = {l: split_negative_blocks(l, neg, positives) for l, neg in raw_negatives.items()}
    return Corpus(f"paper:{path}", positives, negatives)


def split_negative_blocks(lang: str, negatives: list[str], positives: dict[str, list[str]]) -> dict:
    """Cut `lang`'s paper-format negative list into blocks of len(positives) and name each block
    by the language whose positives it shares most sentences with ("?<i>" when it shares none)."""
    size = len(positives[lang])
    if not negatives or size == 0 or len(negatives) % size:
        raise LangneuronsError(
            f"paper set {lang}.json: {len(negatives)} negatives are not whole blocks of "
            f"{size} (one block per other language, as many as the positives)"
        )
    sets = {o: set(s) for o, s in positives.items() if o != lang}
    out: dict[str, list[str]] = {}
    for number, start in enumerate(range(0, len(negatives), size)):
        block = negatives[start : start + size]
        shared = {o: sum(t in s for t in block) for o, s in sets.items()}
        best = max(shared, key=shared.get, default=None)
        out.setdefault(best if best and shared[best] else f"?{number}", []).extend(block)
    return out


def saved_dataset(path: Path, columns: tuple[str, ...], what: str):
    """The first split of a `datasets` dataset saved with `save_to_disk`, checked to have `columns`
    (`what`: corpora or prompts, for the messages)."""
    try:
        from datasets import load_from_disk
    except ImportError:
        raise LangneuronsError(f"hf: {what} need the `datasets` package: pip install datasets") from None
    try:
        ds = load_from_disk(str(path))
    except Exception as exc:
        raise LangneuronsError(f"hf:{path}: not a dataset saved with save_to_disk ({exc})") from None
    if hasattr(ds, "keys"):  # a DatasetDict: take its first split
        ds = ds[list(ds.keys())[0]]
    if not set(columns) <= set(ds.column_names):
        raise LangneuronsError(f"hf:{path}: needs column(s) {', '.join(columns)} (has {ds.column_names})")
    return ds


def load_hf_disk(path: Path) -> Corpus:
    """A `datasets` dataset saved with `save_to_disk`, with `text` and `lang` columns."""
    ds = saved_dataset(path, ("text", "lang"), "corpora")
    positives: dict[str, list[str]] = {}
    for row, (text, lang) in enumerate(zip(ds["text"], ds["lang"])):
        check_code(str(lang), f"{path} row {row}")
        if text and text.strip():
            positives.setdefault(str(lang), []).append(check_text(text.strip(), f"{path} row {row}"))
    return Corpus(f"hf:{path}", positives)


def builtin_groups() -> list[dict]:
    """The embedded parallel corpus: one dict per group with id, domain, split and six languages."""
    text = files("langneurons").joinpath("corpus/builtin.jsonl").read_text(encoding="utf-8")
    groups = [json.loads(line) for line in text.split("\n") if line.strip()]
    order = sorted(range(len(groups)), key=lambda i: hashlib.sha256(groups[i]["id"].encode()).hexdigest())
    heldout = set(order[500:])
    for i, group in enumerate(groups):
        group["split"] = "heldout" if i in heldout else "find"
    return groups


def load_builtin(split: str = "find") -> Corpus:
    if split not in SPLITS:
        raise LangneuronsError(f"builtin corpus: split {split!r} is not one of {', '.join(SPLITS)}")
    groups = [g for g in builtin_groups() if g["split"] == split]
    return Corpus(f"builtin:{split}", {l: [g[l] for g in groups] for l in BUILTIN_LANGUAGES})


def load_corpus(spec: str) -> Corpus:
    """Load `builtin[:split]`, `paper:PATH`, `hf:PATH`, a folder of `<lang>.txt` or a `.jsonl` file."""
    if spec == "builtin" or spec.startswith("builtin:"):
        return load_builtin(spec.partition(":")[2] or "find")
    kind, _, rest = spec.partition(":")
    loaders = {"paper": load_paper, "hf": load_hf_disk}
    if kind in loaders and rest:
        path = Path(rest).expanduser()
        if not path.exists():
            raise LangneuronsError(f"--corpus {spec}: {path} does not exist")
        return loaders[kind](path)
    path = Path(spec).expanduser()
    if path.is_symlink() and not path.exists():
        raise LangneuronsError(f"--corpus {spec}: a broken symlink or a symlink loop; point it at the corpus")
    if not path.exists():
        raise LangneuronsError(
            f"--corpus {spec}: no such file or folder (use builtin, paper:PATH, hf:PATH, a folder "
            "of <lang>.txt files or a .jsonl file)"
        )
    if path.is_dir():
        if not any(path.glob("*.txt")) and any(path.glob("*.json")):
            return load_paper(path)
        return load_folder(path)
    if path.suffix == ".jsonl":
        return load_jsonl(path)
    raise LangneuronsError(f"--corpus {spec}: a file must be .jsonl (or pass a folder)")
