"""Analyses and the HTML report: exact numbers on a hand-made table, a self-contained report of a
tiny run (with and without a sweep), and the report rendered by a headless Chromium."""

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from langneurons.errors import LangneuronsError
from langneurons.find.info import RunInfo, load_run
from langneurons.find.run import find
from langneurons.report import analysis
from langneurons.report.write import escape, write_report

CHROMIUM = Path("/usr/bin/chromium")
NASTY = "<script>alert(1)</script> see https://example.com & http://x.org"


def hand_made() -> tuple[RunInfo, pd.DataFrame]:
    """5 blocks × (attention q_proj, mlp up_proj) × 1 neuron; neuron i sits in block i // 2."""
    sites = [{"name": f"model.layers.{b}.{local}", "block": b, "local": local, "kind": kind,
              "width": 1, "offset": 2 * b + k}
             for b in range(5) for k, (local, kind) in enumerate([("self_attn.q_proj", "attention"),
                                                                  ("mlp.up_proj", "mlp")])]
    ap = {  # top-2 / bottom-2 by construction
        "de": {0: 0.99, 9: 0.95, 4: 0.01, 5: 0.02},
        "fr": {9: 0.97, 3: 0.91, 0: 0.03, 1: 0.04},
        "en": {6: 0.88, 7: 0.85, 8: 0.05, 9: 0.06},
    }
    frames = []
    for lang, chosen in ap.items():
        values = [chosen.get(i, 0.3 + 0.01 * i) for i in range(10)]
        frames.append(pd.DataFrame({"layer": [s["name"] for s in sites], "unit": 0, "ap": values,
                                    "concept": lang, "neuron": range(10)}))
    info = RunInfo(model="hand-made", dtype="float32", corpus="hand-made", languages=list(ap), fingerprint="",
                   sites=sites, neurons=10, modules=10, blocks=5, unique_sentences=0,
                   positives_per_language={}, negatives_per_language={})
    return info, pd.concat(frames, ignore_index=True)


def test_analysis_numbers_on_a_hand_made_table():
    info, expertise = hand_made()
    top = analysis.overlap(expertise, 2, "top").set_index(["language", "other"])
    assert top.loc[("de", "fr"), "shared"] == 1 and top.loc[("de", "fr"), "percent"] == 50.0
    assert top.loc[("de", "en"), "shared"] == 0 and top.loc[("en", "en"), "shared"] == 2
    matrix = analysis.overlap_matrix(analysis.overlap(expertise, 2, "top"), "shared")
    assert matrix.to_numpy().tolist() == [[2, 1, 0], [1, 2, 0], [0, 0, 2]]

    layers = analysis.layer_distribution(expertise, info, 2)
    de_top = layers[(layers.language == "de") & (layers.side == "top")]
    assert sorted(map(tuple, de_top[["block", "kind", "local", "count"]].to_numpy().tolist())) == [
        (0, "attention", "self_attn.q_proj", 1), (4, "mlp", "mlp.up_proj", 1)]
    assert layers.groupby("side")["count"].sum().to_dict() == {"bottom": 6, "top": 6}

    edges = analysis.edge_share(layers, info).set_index(["language", "side"])
    assert edges.loc[("de", "top"), "edge"] == 1.0 and edges.loc[("de", "bottom"), "edge"] == 0.0
    assert edges.loc[("fr", "top"), ["first", "last"]].tolist() == [0.0, 0.5]
    assert analysis.edge_blocks(18) == (range(0, 4), range(14, 18))

    ap = analysis.ap_summary(expertise).set_index("language")
    assert ap["ap>=0.9"].to_dict() == {"de": 2, "fr": 2, "en": 0}
    assert ap["ap>=0.8"].to_dict() == {"de": 2, "fr": 2, "en": 2}
    assert ap.loc["de", "max_ap"] == 0.99 and ap.loc["en", "neurons"] == 10

    assert analysis.summary_sentences(analysis.analyze(info, expertise, n=2)) == [
        "The largest overlap between top-2 sets is 50.0% (de–fr, 1 shared); "
        "2 of 3 language pairs share no neuron.",
        "No two languages' bottom-2 sets share a neuron (3 pairs).",
        "50% of the top-2 and 67% of the bottom-2 neurons (all languages) lie in the first or last "
        "20% of blocks (blocks 0 and 4), which hold 40% of all neurons.",
        "Of the top-2 neurons, 67% are in MLP and 33% in attention modules; the most frequent "
        "module is mlp.up_proj (67%).",
        "Highest AP per language: de 0.99, fr 0.97, en 0.88; neurons with AP ≥ 0.9: de 2, fr 2, en 0.",
    ]
    assert analysis.effective_n(expertise, 1000) == 10
    with pytest.raises(LangneuronsError, match="at least 1 neuron"):
        analysis.analyze(info, expertise, n=0)


def test_best_n_takes_the_smallest_n_with_the_highest_share():
    rows = [("de", 0, 0.1, 10.0), ("de", 20, 0.9, 12.0), ("de", 200, 0.9, 15.0), ("de", 2000, 0.5, 80.0),
            ("en", 0, 0.95, 9.0), ("en", 20, 0.95, 9.5)]
    sweep = pd.DataFrame([{"mode": "unconditional", "language": l, "selection": "both", "n": n,
                           "value": "on_p50", "positions": "all", "target_share": s, "perplexity": p}
                          for l, n, s, p in rows])
    best = analysis.best_n(sweep).set_index("language")
    assert best.loc["de", ["n", "target_share", "baseline", "perplexity"]].tolist() == [20, 0.9, 0.1, 12.0]
    assert best.loc["en", "n"] == 0 and "chrf" not in best
    assert analysis.sweep_sentences(best.reset_index()) == [
        "Best N per language (unconditional, target-language share): de 20 both (0.90, vs 0.10 at N = 0), "
        "en 0 (0.95, unforced).",
        "Perplexity of held-out text, N = 0 → best N (unconditional): de 10.0 → 12.0.",
    ]


def fabricate_sweep(run: Path, languages: list[str]) -> None:
    """A small sweep table and its sample files, shaped as `steering.sweep` writes them."""
    folder, rows = run / "sweep", []
    folder.mkdir()
    for lang in languages:
        for n in (0, 2, 20):
            rows.append({"mode": "unconditional", "language": lang, "selection": "both", "n": n,
                         "value": "on_p50", "positions": "all", "target_share": n / 20,
                         "languages": json.dumps({lang: n}), "samples": 4, "perplexity": 20.0 + n,
                         "seconds": 1.0})
            setting = [{"language": lang, "n": n, "selection": "both", "value": "on_p50",
                        "positions": "all", "seed": 0}]
            records = [{"setting": setting, "mode": "unconditional", "seed": s, "prompt": "<bos>",
                        "text": f"{lang} {n} {NASTY}", "lang": lang, "lang_prob": 0.5} for s in range(4)]
            name = "unconditional-none" if n == 0 else f"unconditional-{lang}-both-{n}-on_p50-all"
            (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    pd.DataFrame(rows).to_parquet(run / "sweep.parquet")


@pytest.fixture
def tiny_run(tiny_llama, corpus_dir, tmp_path) -> Path:
    find(tmp_path / "run", corpus=str(corpus_dir), loaded=tiny_llama, progress=False)
    return tmp_path / "run"


class References(HTMLParser):
    """Collects every attribute that can make a browser fetch something."""

    FETCHING = {"src", "href", "srcset", "action", "poster", "data", "background", "xlink:href"}

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.images = 0

    def handle_starttag(self, tag, attrs):
        self.images += tag == "img"
        self.found += [value for name, value in attrs if name in self.FETCHING]


def external_references(text: str) -> list[str]:
    parser = References()
    parser.feed(text)
    inline = [v for v in parser.found if not (v or "").startswith(("data:", "#"))]
    return inline + re.findall(r"url\((?!['\"]?data:)[^)]*\)|@import", text)


def assert_self_contained(text: str) -> None:
    for forbidden in ("http://", "https://", "<script", "<link", "<iframe"):
        assert forbidden not in text.lower(), forbidden
    assert external_references(text) == []


def test_report_is_self_contained_and_matches_the_analysis(tiny_run):
    info, expertise = load_run(tiny_run)
    fabricate_sweep(tiny_run, info.languages)
    path = write_report(tiny_run, n=20, per_setting=2)
    text = path.read_text(encoding="utf-8")
    assert path == tiny_run / "report.html" and path.stat().st_size < 5_000_000
    assert_self_contained(text)
    assert text.count('src="data:image/png;base64,') >= 8
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # generated text is shown, escaped

    result = analysis.analyze(info, expertise, n=20, run=tiny_run, per_setting=2)
    sentences = analysis.summary_sentences(result)
    assert any(s.startswith("Best N per language") for s in sentences)
    for sentence in sentences:
        assert f"<li>{escape(sentence)}</li>" in text
    pairs = result.overlap_top[result.overlap_top.language < result.overlap_top.other]
    if pairs["shared"].max() > 0:
        assert f"is {pairs['percent'].max():.1f}% " in sentences[0]
    else:
        assert sentences[0].startswith("No two languages' top-20 sets share a neuron")

    written = pd.read_csv(tiny_run / "analysis" / "overlap_top.csv")
    pd.testing.assert_frame_equal(written, analysis.overlap(expertise, 20, "top"), check_dtype=False)
    best = pd.read_csv(tiny_run / "analysis" / "best_n.csv")
    assert (best["n"] == 20).all() and (best["target_share"] == 1.0).all()
    for name in ("overlap_bottom", "layers", "edge_share", "ap_summary"):
        assert (tiny_run / "analysis" / f"{name}.csv").exists()
    figures = {p.name for p in (tiny_run / "figures").iterdir()}
    for name in ("overlap-top", "blocks-top", "modules-bottom", "ap",
                 "target_share-unconditional-both-on_p50-all", "perplexity-unconditional-both-on_p50-all"):
        assert {f"{name}.png", f"{name}.svg"} <= figures, name
    assert len(result.samples) == 2 * (1 + 2 * len(info.languages))


def test_report_without_sweep_has_no_steering(tiny_run):
    text = write_report(tiny_run, n=20).read_text(encoding="utf-8")
    assert_self_contained(text)
    assert "Best N" not in text and "Sample generations" not in text
    assert not (tiny_run / "analysis" / "best_n.csv").exists()
    assert "tiny-llama" in text and "Summary" in text


def chromium(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    base = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--no-first-run", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={cwd / 'chromium-profile'}"]
    return subprocess.run(base + list(args), cwd=cwd, capture_output=True, text=True, timeout=180)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)")
def test_report_renders_in_a_browser(tiny_run, tmp_path):
    import matplotlib.image

    fabricate_sweep(tiny_run, load_run(tiny_run)[0].languages)
    report = write_report(tiny_run, n=20)
    for width in (1280, 390):  # a laptop and a phone
        shot = tmp_path / f"shot-{width}.png"
        chromium(f"--window-size={width},2000", f"--screenshot={shot}", report.as_uri(), cwd=tmp_path)
        pixels = matplotlib.image.imread(shot)
        assert pixels.shape[:2] == (2000, width) and pixels[..., :3].std() > 0.05
    dom = chromium("--dump-dom", report.as_uri(), cwd=tmp_path).stdout
    assert "Summary" in dom and "Sample generations" in dom
    assert external_references(dom) == []  # the page as the browser built it fetches nothing


def test_report_of_a_run_imports_no_torch(tiny_run):
    """`langneurons report RUN` reads tables only: the whole command runs without importing torch."""
    fabricate_sweep(tiny_run, ["de", "fr"])
    probe = ("import sys\nfrom langneurons.cli import app\ntry:\n"
             f"    app(['report', {str(tiny_run)!r}])\nexcept SystemExit as exit:\n    assert not exit.code, exit\n"
             "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert (tiny_run / "report.html").is_file()
    assert result.stdout.strip().endswith("False"), result.stdout + result.stderr
