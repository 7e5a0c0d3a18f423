"""Write the sample data set shipped with qarun-workers (yahoo-csv format, no header).

The questions and answers are written for QARun from the fact tables in
sample_facts.json (beside this script) and the sentence patterns below, so the sample
carries no third-party text. Run it from the repository root:

    .venv/bin/python workers/scripts/make_sample_dataset.py
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "src" / "qarun_workers" / "data" / "sample.csv"
FACTS: dict[str, Any] = json.loads((HERE / "sample_facts.json").read_text(encoding="utf-8"))


def capitals() -> Iterator[tuple[str, str, str, str]]:
    for fact in FACTS["capitals"]:
        country, city, river = fact["country"], fact["city"], fact["river"]
        yield (
            "Education & Reference",
            f"What is the capital of {country}?",
            "",
            f"The capital of {country} is {city}. It is the largest political centre of the "
            f"country and lies on {river}.",
        )
        yield (
            "Education & Reference",
            f"Which river flows through {city}?",
            f"I am visiting {city} next month and want to walk along the river.",
            f"{city}, the capital of {country}, lies on {river}. Walks along the river banks "
            "are a good way to see the old centre.",
        )


def planets() -> Iterator[tuple[str, str, str, str]]:
    for fact in FACTS["planets"]:
        name, order, year, moons = fact["name"], fact["order"], fact["year"], fact["moons"]
        yield (
            "Science & Mathematics",
            f"How long is a year on {name}?",
            "",
            f"{name} is the {order} planet from the sun and takes {year} to go around it "
            f"once, so a year on {name} lasts {year}.",
        )
        yield (
            "Science & Mathematics",
            f"How many moons does {name} have?",
            "Just curious.",
            f"{name}, the {order} planet from the sun, has {moons}.",
        )


def terms() -> Iterator[tuple[str, str, str, str]]:
    for fact in FACTS["terms"]:
        category, term, text = fact["category"], fact["term"], fact["explanation"]
        yield (category, f"What is {term}?", "", f"{term[0].upper()}{term[1:]} is {text}.")
        yield (
            category,
            f"Can someone explain {term} in simple words?",
            "My teacher explained it but I still do not get it.",
            f"Put simply, {term} is {text}. An everyday example usually makes it click.",
        )
        yield (
            category,
            f"What does {term.removeprefix('a ').removeprefix('an ')} mean?",
            "I keep hearing the word and would like a short definition.",
            f"It means {text}.",
        )


def tips() -> Iterator[tuple[str, str, str, str]]:
    for fact in FACTS["tips"]:
        category, goal, advice = fact["category"], fact["goal"], fact["advice"]
        yield (category, f"How can I {goal}?", "", f"To {goal}, {advice}.")
        yield (
            category,
            f"Any tips to {goal}?",
            "I tried a few things and nothing worked so far.",
            f"The advice that works for most people who want to {goal}: {advice}. "
            "Be patient and keep at it for a few weeks.",
        )


def units() -> Iterator[tuple[str, str, str, str]]:
    for fact in FACTS["units"]:
        source, target, factor = fact["source"], fact["target"], fact["factor"]
        for amount in (1, 5, 10, 42, 100):
            value = amount * factor
            yield (
                "Science & Mathematics",
                f"How many {target} are {amount} {source}?",
                "",
                f"{amount} {source} are about {value:.2f} {target}, because one of the "
                f"first equals {factor} of the second.",
            )


def arithmetic() -> Iterator[tuple[str, str, str, str]]:
    for a, b in FACTS["arithmetic"]:
        yield (
            "Science & Mathematics",
            f"What is {a} times {b}?",
            "Homework check",
            f"{a} times {b} is {a * b}. You can check it by dividing {a * b} by {b}, "
            f"which gives {a} again.",
        )
        yield (
            "Science & Mathematics",
            f"What is {a} percent of {b * 10}?",
            "",
            f"{a} percent of {b * 10} is {a * b / 10:g}: multiply {b * 10} by {a} and "
            "divide by 100.",
        )


def main() -> int:
    rows = [*capitals(), *planets(), *terms(), *tips(), *units(), *arithmetic()]
    classes = FACTS["classes"]
    with OUT.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
        for category, title, content, answer in rows:
            writer.writerow([classes.index(category) + 1, title, content, answer])
    print(f"wrote {len(rows)} rows to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
