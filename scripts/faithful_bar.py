"""How much of the reference-free content score an answer in the target language can keep at best
(docs/steering.md, "Requests"): the unforced (English) answers to the first 30 built-in requests of
each part, and the same answers translated faithfully into the language (scripts/faithful/), scored
alike; with `--recommended`, also the RUN's request recommendation on the same requests and seed.

The files hold, per language and part, the request, the unforced answer of Gemma-3-270M to it
(seed 1, the search's sampling) and its translation, written for this project sentence by sentence
by AI assistants told to keep every line, error and cut-off ending, and to add nothing.

    python scripts/faithful_bar.py runs/builtin -l de,fr,es,zh,ja --recommended
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from langneurons.steer.evaluate import REQUEST_RECOVERY, content_score
from langneurons.steer.intervene import load_interventions
from langneurons.steer.prompts import in_split, load_prompts
from langneurons.steer.steerable import open_run
from langneurons.steer.task import PROMPTED, prompt_records, task_scores

HERE = Path(__file__).parent / "faithful"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("-l", "--languages", default="de,fr,es,zh,ja")
    parser.add_argument("--recommended", action="store_true", help="also score the RUN's request recommendation")
    args = parser.parse_args()
    steerable = open_run(args.run)
    model, tokenizer = steerable.loaded.model, steerable.loaded.tokenizer
    print("language part     english  faithful  ratio  recommended  of faithful")
    for language in args.languages.split(","):
        for part in ("choose", "heldout"):
            rows = [json.loads(line) for line in (HERE / f"{language}-{part}.jsonl").read_text("utf-8").splitlines()]
            requests = [r["request"] for r in rows]
            english = content_score(model, tokenizer, [r["en"] for r in rows], requests, REQUEST_RECOVERY)["content"]
            faithful = content_score(model, tokenizer, [r[language] for r in rows], requests, REQUEST_RECOVERY)["content"]
            line = f"{language:8s} {part:8s} {english:7.2f} {faithful:9.2f} {faithful / english:6.2f}"
            if args.recommended and part == "heldout":
                prompts = in_split(load_prompts(f"requests:{language}"), part)[: len(rows)]
                if [p.id for p in prompts] != [r["id"] for r in rows]:
                    raise SystemExit(f"{HERE}/{language}-{part}.jsonl: its requests are not the first "
                                     f"{len(rows)} of the {part} part")
                chosen = load_interventions(args.run / "frontier" / f"{language}-prompts-recommended.json",
                                            steerable.info.fingerprint)
                records = prompt_records(steerable, chosen, prompts, sorted({r["seed"] for r in rows}), PROMPTED,
                                         progress=False)
                steered = task_scores(records, language, steerable, ppl=False)["content"]
                line += f" {steered:12.2f} {steered / faithful:11.2f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
