"""The whole-characters rule: no "�" token, and byte-fallback tokens only where the text stays UTF-8."""

import numpy as np
import torch

from langneurons.steer.generate import Sampling, next_tokens, without_cut_character
from langneurons.steer.rules import byte_values, next_byte, whole_characters


class ByteVocabulary:
    """A tokenizer stand-in: ids 0-255 are Gemma-style byte tokens `<0xAB>`, then a few words, two
    of them broken text as Gemma's vocabulary has it."""

    words = ["▁the", "▁猫", "<eos>", "▁\ufffd", "\ufffd\ufffd"]

    def __len__(self) -> int:
        return 256 + len(self.words)

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return [f"<0x{i:02X}>" if i < 256 else self.words[i - 256] for i in ids]


def test_next_byte_follows_rfc_3629():
    assert next_byte([]) is None and next_byte([0x41]) is None
    assert next_byte([0xE3]) == (0x80, 0xBF) and next_byte([0xE3, 0x81]) == (0x80, 0xBF)
    assert next_byte([0xE3, 0x81, 0x82]) is None  # あ is whole
    assert next_byte([0xE0]) == (0xA0, 0xBF) and next_byte([0xED]) == (0x80, 0x9F)  # no overlong, no surrogate
    assert next_byte([0xF0]) == (0x90, 0xBF) and next_byte([0xF4]) == (0x80, 0x8F)
    assert next_byte([0xF0, 0x9F, 0x98]) == (0x80, 0xBF) and next_byte([0xF0, 0x9F, 0x98, 0x80]) is None
    assert next_byte([0xC3, 0xA4]) is None and next_byte([0xE3, 0x81, 0x82, 0xC3]) == (0x80, 0xBF)


def test_byte_values_reads_only_byte_tokens():
    values = byte_values(ByteVocabulary())
    assert values[:256].tolist() == list(range(256)) and values[256:].tolist() == [-1, -1, -1, -2, -2]


def test_sampled_bytes_are_always_well_formed_utf8():
    tok = ByteVocabulary()
    rng = np.random.default_rng(0)
    sampling = Sampling(temperature=1.0, top_p=1.0)

    def sample(rule: bool, steps: int = 3000) -> list[int]:
        written: list[list[int]] = [[]]
        for _ in range(steps):
            logits = torch.from_numpy(rng.normal(size=(1, len(tok))).astype(np.float32))
            if rule:
                allowed = whole_characters(logits, written, tok)
                assert torch.equal(allowed[torch.isfinite(allowed)], logits[torch.isfinite(allowed)])
                logits = allowed
            written[0].append(int(next_tokens(logits, sampling, rng.random(1))[0]))
        return written[0]

    def text_bytes(ids: list[int]) -> bytes:  # words count as a character boundary
        return b"".join(bytes([i]) if i < 256 else tok.words[i - 256].encode() for i in ids)

    unruled, ruled = sample(False), sample(True)
    try:
        text_bytes(unruled).decode("utf-8")
        raise AssertionError("random bytes were valid UTF-8: the test shows nothing")
    except UnicodeDecodeError:
        pass
    text = text_bytes(without_cut_character(tok, ruled)).decode("utf-8")  # raises if any byte sequence is ill-formed
    assert "\ufffd" not in text and "\ufffd" in text_bytes(unruled).decode("utf-8", errors="ignore")
    assert len([c for c in text if ord(c) > 0x7F]) > 50  # multi-byte characters were written


def test_inside_a_character_only_its_continuations_are_allowed():
    tok = ByteVocabulary()
    logits = torch.zeros(3, len(tok) + 2)  # the model's head may be wider than the tokenizer
    allowed = whole_characters(logits, [[0xE3], [0xE3, 0x81, 0x82], [256, 0xF4]], tok)
    assert torch.isfinite(allowed[0]).nonzero().squeeze(1).tolist() == list(range(0x80, 0xC0))
    starts = torch.isfinite(allowed[1]).nonzero().squeeze(1).tolist()  # ASCII, leads C2-F4, the words
    assert starts == list(range(0x80)) + list(range(0xC2, 0xF5)) + [256, 257, 258, 261, 262]  # not 259, 260: "�"
    assert torch.isfinite(allowed[2]).nonzero().squeeze(1).tolist() == list(range(0x80, 0x90))


def test_a_last_character_cut_by_the_token_limit_is_dropped():
    tok = ByteVocabulary()
    spaces = [0xE3, 0x80, 0x80] * 3  # three ideographic spaces
    assert without_cut_character(tok, [256] + spaces + [0xE3, 0x80]) == [256] + spaces
    assert without_cut_character(tok, [256] + spaces + [0xF0]) == [256] + spaces
    assert without_cut_character(tok, [256] + spaces) == [256] + spaces  # whole: kept
    assert without_cut_character(tok, [0x80, 0x80, 257]) == [0x80, 0x80, 257]  # ends on a word
    assert without_cut_character(tok, [0xE3]) == []
