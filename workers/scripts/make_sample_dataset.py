# ruff: noqa: E501 - the fact tables read best one entry a line
"""Write the sample data set shipped with qarun-workers (yahoo-csv format, no header).

The questions and answers are written for QARun from the small fact tables below, so
the sample carries no third-party text. Run it from the repository root:

    .venv/bin/python workers/scripts/make_sample_dataset.py
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "qarun_workers" / "data" / "sample.csv"

CAPITALS = [
    ("France", "Paris", "the Seine"),
    ("Italy", "Rome", "the Tiber"),
    ("Spain", "Madrid", "the Manzanares"),
    ("Germany", "Berlin", "the Spree"),
    ("Chile", "Santiago", "the Mapocho"),
    ("Argentina", "Buenos Aires", "the Rio de la Plata"),
    ("Peru", "Lima", "the Rimac"),
    ("Japan", "Tokyo", "the Sumida"),
    ("Egypt", "Cairo", "the Nile"),
    ("Hungary", "Budapest", "the Danube"),
    ("Austria", "Vienna", "the Danube"),
    ("England", "London", "the Thames"),
    ("Russia", "Moscow", "the Moskva"),
    ("Portugal", "Lisbon", "the Tagus"),
    ("Ireland", "Dublin", "the Liffey"),
    ("Czechia", "Prague", "the Vltava"),
    ("Iraq", "Baghdad", "the Tigris"),
    ("Thailand", "Bangkok", "the Chao Phraya"),
    ("Uruguay", "Montevideo", "the Rio de la Plata"),
    ("Colombia", "Bogota", "the Bogota river"),
    ("Poland", "Warsaw", "the Vistula"),
    ("Serbia", "Belgrade", "the Danube and the Sava"),
    ("Sudan", "Khartoum", "the Blue and White Nile"),
    ("Mali", "Bamako", "the Niger"),
    ("Canada", "Ottawa", "the Ottawa river"),
]
PLANETS = [
    ("Mercury", "first", "88 days", "no moons"),
    ("Venus", "second", "225 days", "no moons"),
    ("Earth", "third", "365 days", "one moon"),
    ("Mars", "fourth", "687 days", "two small moons"),
    ("Jupiter", "fifth", "about 12 years", "dozens of moons"),
    ("Saturn", "sixth", "about 29 years", "dozens of moons and bright rings"),
    ("Uranus", "seventh", "about 84 years", "27 known moons"),
    ("Neptune", "eighth", "about 165 years", "16 known moons"),
]
TERMS = [  # (category, term, explanation)
    (
        "Computers & Internet",
        "a compiler",
        "a program that translates source code into machine code before the program runs, checking types and syntax on the way",
    ),
    (
        "Computers & Internet",
        "RAM",
        "the fast working memory of a computer; it holds running programs and their data and is emptied when the power goes off",
    ),
    (
        "Computers & Internet",
        "a firewall",
        "a filter between networks that allows or blocks traffic by rules on addresses, ports and protocols",
    ),
    (
        "Computers & Internet",
        "DNS",
        "the internet's directory that turns names such as example.org into the numeric addresses computers use to connect",
    ),
    (
        "Computers & Internet",
        "an operating system",
        "the software that manages the hardware, runs programs, and shares memory, files and devices between them",
    ),
    (
        "Computers & Internet",
        "a database index",
        "a sorted structure kept next to a table so that rows can be found without reading the whole table",
    ),
    (
        "Computers & Internet",
        "a message queue",
        "a buffer that lets one program hand work to another asynchronously, so that neither waits for the other",
    ),
    (
        "Computers & Internet",
        "encryption",
        "scrambling data with a key so that only someone holding the right key can read it again",
    ),
    (
        "Computers & Internet",
        "a cache",
        "a small fast store of recent results that saves repeating slow work or slow reads",
    ),
    (
        "Computers & Internet",
        "a virus",
        "a program that copies itself into other files or machines, often damaging data or stealing information",
    ),
    (
        "Business & Finance",
        "compound interest",
        "interest earned on both the original amount and on the interest already added, so savings grow faster over time",
    ),
    (
        "Business & Finance",
        "inflation",
        "the general rise in prices over time, which means the same money buys less than it used to",
    ),
    (
        "Business & Finance",
        "a stock",
        "a share of ownership in a company that may pay dividends and can rise or fall in price",
    ),
    (
        "Business & Finance",
        "a bond",
        "a loan to a government or company that pays regular interest and returns the principal at maturity",
    ),
    (
        "Business & Finance",
        "a budget",
        "a plan that lists expected income and spending so that money goes where you intend",
    ),
    (
        "Business & Finance",
        "diversification",
        "spreading money over many different investments so that one loss does not sink everything",
    ),
    (
        "Business & Finance",
        "a credit score",
        "a number lenders use to judge how reliably a person has repaid debts in the past",
    ),
    (
        "Business & Finance",
        "gross margin",
        "revenue minus the direct cost of the goods sold, often shown as a percentage of revenue",
    ),
    (
        "Health",
        "a calorie",
        "a unit of energy in food; the body burns calories to keep warm, move and keep organs working",
    ),
    (
        "Health",
        "cholesterol",
        "a fatty substance carried in the blood; too much of the LDL kind can clog arteries over years",
    ),
    (
        "Health",
        "a vaccine",
        "a preparation that trains the immune system to recognise a germ so the body fights it off quickly later",
    ),
    (
        "Health",
        "dehydration",
        "losing more water than you take in; signs are thirst, dark urine, headache and tiredness",
    ),
    (
        "Health",
        "an allergy",
        "an overreaction of the immune system to something harmless such as pollen, dust or a food",
    ),
    (
        "Health",
        "blood pressure",
        "the force of blood against artery walls, written as two numbers for the heart beating and resting",
    ),
    (
        "Science & Mathematics",
        "photosynthesis",
        "the process by which plants use sunlight, water and carbon dioxide to make sugar and release oxygen",
    ),
    (
        "Science & Mathematics",
        "gravity",
        "the attraction between masses; it keeps us on the ground and the planets in orbit around the sun",
    ),
    (
        "Science & Mathematics",
        "an atom",
        "the smallest unit of an element, a nucleus of protons and neutrons with electrons around it",
    ),
    (
        "Science & Mathematics",
        "a prime number",
        "a whole number greater than one that can only be divided evenly by one and by itself",
    ),
    (
        "Science & Mathematics",
        "evolution",
        "the change of living things over generations through variation, inheritance and natural selection",
    ),
    (
        "Science & Mathematics",
        "a black hole",
        "a region where gravity is so strong that nothing, not even light, can escape from it",
    ),
    (
        "Science & Mathematics",
        "an enzyme",
        "a protein that speeds up a chemical reaction in living cells without being used up",
    ),
    (
        "Science & Mathematics",
        "the speed of light",
        "about 300,000 kilometres per second in a vacuum, the fastest anything can travel",
    ),
    (
        "Education & Reference",
        "a thesis statement",
        "one sentence near the start of an essay that states the main argument the essay will support",
    ),
    (
        "Education & Reference",
        "a bibliography",
        "the list of sources a writer used, given at the end of a paper in a standard citation style",
    ),
    (
        "Education & Reference",
        "plagiarism",
        "presenting someone else's words or ideas as your own without credit",
    ),
    (
        "Education & Reference",
        "a syllabus",
        "the outline of a course listing its topics, readings, assignments and grading rules",
    ),
    (
        "Politics & Government",
        "a democracy",
        "a system in which citizens choose their government in free elections and can replace it",
    ),
    (
        "Politics & Government",
        "a constitution",
        "the basic law of a country that sets up its institutions and protects citizens' rights",
    ),
    (
        "Politics & Government",
        "a veto",
        "the power of one official or body to block a decision made by another",
    ),
    (
        "Politics & Government",
        "a referendum",
        "a direct vote in which all citizens decide one specific question",
    ),
    (
        "Society & Culture",
        "a tradition",
        "a custom or belief passed down from one generation to the next",
    ),
    (
        "Society & Culture",
        "etiquette",
        "the accepted rules of polite behaviour in a society or group",
    ),
    (
        "Society & Culture",
        "a proverb",
        "a short well known saying that gives advice or states a general truth",
    ),
    (
        "Sports",
        "offside in football",
        "being nearer the opponent's goal line than both the ball and the second-last defender when the ball is played to you",
    ),
    (
        "Sports",
        "a hat trick",
        "three goals or points of the same kind scored by one player in a single game",
    ),
    (
        "Sports",
        "a marathon",
        "a running race of 42.195 kilometres, named after the legend of a messenger from Marathon to Athens",
    ),
    (
        "Sports",
        "a triathlon",
        "a race that combines swimming, cycling and running one after the other",
    ),
    (
        "Entertainment & Music",
        "a chord",
        "three or more notes played together, such as the C major chord C, E and G",
    ),
    (
        "Entertainment & Music",
        "a sitcom",
        "a situation comedy: a series with the same characters in funny everyday situations",
    ),
    (
        "Entertainment & Music",
        "tempo",
        "the speed of a piece of music, usually counted in beats per minute",
    ),
    (
        "Family & Relationships",
        "active listening",
        "paying full attention, asking questions and repeating back what the other person said",
    ),
    (
        "Family & Relationships",
        "a prenuptial agreement",
        "a contract a couple signs before marriage that says how property is split if they divorce",
    ),
]
TIPS = [  # (category, goal, advice)
    (
        "Health",
        "sleep better",
        "keep a regular bedtime, avoid screens and caffeine in the evening, and keep the bedroom dark and cool",
    ),
    (
        "Health",
        "lose weight safely",
        "eat a little less than you burn, favour vegetables and protein, walk every day and aim for half a kilo a week",
    ),
    (
        "Health",
        "stop a nosebleed",
        "sit up, lean forward and pinch the soft part of the nose for ten minutes without letting go",
    ),
    (
        "Health",
        "get rid of hiccups",
        "hold your breath for a few seconds, sip cold water slowly, or breathe into a paper bag",
    ),
    (
        "Computers & Internet",
        "speed up a slow computer",
        "remove programs that start at boot, free disk space, scan for malware and add memory if it is full",
    ),
    (
        "Computers & Internet",
        "make a strong password",
        "use a long passphrase of several random words, a different one per site, kept in a password manager",
    ),
    (
        "Computers & Internet",
        "back up my files",
        "keep three copies on two kinds of media with one copy off site, and test that restoring works",
    ),
    (
        "Computers & Internet",
        "learn programming",
        "pick one language such as Python, build small projects you care about and read other people's code",
    ),
    (
        "Business & Finance",
        "save money every month",
        "pay yourself first by moving a fixed amount to savings on payday and track where the rest goes",
    ),
    (
        "Business & Finance",
        "start a small business",
        "test the idea with real customers, keep costs low, register the business and separate its money from yours",
    ),
    (
        "Business & Finance",
        "pay off debt faster",
        "list debts by interest rate, pay the minimum on all and put every extra amount on the most expensive one",
    ),
    (
        "Education & Reference",
        "study for an exam",
        "space your study over days, test yourself with practice questions and sleep well the night before",
    ),
    (
        "Education & Reference",
        "write a good essay",
        "plan an outline, state your thesis early, support each point with evidence and revise the draft",
    ),
    (
        "Education & Reference",
        "learn a new language",
        "practise a little every day, speak with native speakers early and learn the most common words first",
    ),
    (
        "Family & Relationships",
        "make new friends in a new city",
        "join clubs or classes around your interests, say yes to invitations and meet the same people regularly",
    ),
    (
        "Family & Relationships",
        "handle an argument with my partner",
        "stay calm, talk about the problem not the person, listen fully and look for a compromise together",
    ),
    (
        "Family & Relationships",
        "help a child with homework",
        "give a quiet place and a routine, explain without doing it for them and praise effort",
    ),
    (
        "Sports",
        "start running",
        "begin with walk-run intervals three times a week, buy proper shoes and increase distance slowly",
    ),
    (
        "Sports",
        "improve my swimming",
        "work on breathing and body position first, take lessons and swim short intervals with rests",
    ),
    (
        "Sports",
        "build muscle",
        "lift progressively heavier weights two or three times a week, eat enough protein and rest between sessions",
    ),
    (
        "Entertainment & Music",
        "learn guitar",
        "practise fifteen minutes a day, learn the basic open chords first and play songs you like",
    ),
    (
        "Entertainment & Music",
        "sing better",
        "warm up, breathe from the diaphragm, practise scales and record yourself to hear what to fix",
    ),
    (
        "Society & Culture",
        "give a good speech",
        "know your main message, practise aloud, speak slowly and look at the audience",
    ),
    (
        "Politics & Government",
        "register to vote",
        "check the electoral office's rules for your area, fill in the form with proof of address before the deadline",
    ),
]
UNITS = [
    ("kilometres", "miles", 0.621371),
    ("kilograms", "pounds", 2.20462),
    ("litres", "gallons", 0.264172),
    ("metres", "feet", 3.28084),
    ("centimetres", "inches", 0.393701),
]


def capitals() -> Iterator[tuple[str, str, str, str]]:
    for country, city, river in CAPITALS:
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
    for name, order, year, moons in PLANETS:
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
    for category, term, text in TERMS:
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
    for category, goal, advice in TIPS:
        yield (category, f"How can I {goal}?", "", f"To {goal}, {advice}.")
        yield (
            category,
            f"Any tips to {goal}?",
            "I tried a few things and nothing worked so far.",
            f"The advice that works for most people who want to {goal}: {advice}. "
            "Be patient and keep at it for a few weeks.",
        )


def units() -> Iterator[tuple[str, str, str, str]]:
    for source, target, factor in UNITS:
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
    for a, b in ((12, 7), (25, 4), (144, 12), (81, 9), (15, 15), (1000, 8), (36, 6), (99, 3)):
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


CLASSES = [
    "Society & Culture",
    "Science & Mathematics",
    "Health",
    "Education & Reference",
    "Computers & Internet",
    "Sports",
    "Business & Finance",
    "Entertainment & Music",
    "Family & Relationships",
    "Politics & Government",
]


def main() -> int:
    rows = [*capitals(), *planets(), *terms(), *tips(), *units(), *arithmetic()]
    with OUT.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
        for category, title, content, answer in rows:
            writer.writerow([CLASSES.index(category) + 1, title, content, answer])
    print(f"wrote {len(rows)} rows to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
