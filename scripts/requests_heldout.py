"""Scores a RUN's request recommendation on the whole held-out part of the built-in requests, beside
the unforced answers (docs/steering.md, "Requests"): the task search reports the first 30 held-out
requests; this reads all of them, with the search's sampling and seed. Perplexity is left out.

    python scripts/requests_heldout.py runs/builtin -l de,fr,es,zh,ja
"""

from __future__ import annotations

import argparse
from pathlib import Path

from langneurons.steer.intervene import Setting, load_interventions
from langneurons.steer.prompts import in_split, load_prompts
from langneurons.steer.steerable import open_run
from langneurons.steer.task import PROMPTED, prompt_records, task_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("-l", "--languages", default="de,fr,es,zh,ja")
    args = parser.parse_args()
    steerable = open_run(args.run)
    for language in args.languages.split(","):
        prompts = in_split(load_prompts(f"requests:{language}"), "heldout")
        chosen = load_interventions(args.run / "frontier" / f"{language}-prompts-recommended.json",
                                    steerable.info.fingerprint)
        for name, setting in (("unforced", Setting()), ("recommended", chosen)):
            records = prompt_records(steerable, setting, prompts, [1], PROMPTED, progress=False)
            row = task_scores(records, language, steerable, ppl=False)
            print(f"{language} {name:11s} requests {len(prompts)}  LPR {row['lpr']:.3f}  content {row['content']:.2f}"
                  f"  degenerate {row['degenerate_share']:.3f}", flush=True)


if __name__ == "__main__":
    main()
