"""A seeded generator of varied English sentences (4-15 words) for the synthetic corpus.

Word lists and templates were written for this project. They mix plosives, fricatives, nasals,
liquids, diphthongs and clusters so that a few dozen sentences cover the English phone inventory.
"""

from __future__ import annotations

import random

NAMES = ["Maya", "Oscar", "Judith", "Theo", "Rosalind", "Kwame", "Beatrice", "Hugo", "Ingrid", "Patrick",
         "Zoe", "Vincent", "Leila", "Gustav", "Nora", "Yusuf", "Charlotte", "Dmitri", "Fiona", "Elliot"]
NOUNS = ["lantern", "harbour", "violin", "garden", "engine", "pocket watch", "thunderstorm", "bicycle",
         "chimney", "orchard", "telescope", "puzzle", "shoe", "journey", "ceiling", "oyster", "mirror", "blanket",
         "quarry", "giraffe", "yacht", "jacket", "whistle", "measure", "treasure", "fountain", "kitchen", "voyage",
         "rhythm", "zipper", "anchor", "feather", "pillow", "bridge", "thimble", "choir", "canyon", "pebble"]
ADJECTIVES = ["bright", "heavy", "quiet", "crooked", "smooth", "enormous", "fragile", "yellow", "ancient",
              "chilly", "joyful", "thick", "shiny", "vivid", "rough", "gentle", "huge", "peculiar", "wet", "azure"]
VERBS_PAST = ["carried", "painted", "measured", "borrowed", "watched", "repaired", "discovered", "thanked",
              "pushed", "juggled", "whispered to", "followed", "cleaned", "photographed", "chased", "judged",
              "organised", "sketched", "rescued", "weighed"]
PLACES = ["near the old mill", "behind the station", "under the bridge", "at the edge of the forest",
          "in the busy market", "beside the frozen lake", "on top of the hill", "inside the museum",
          "along the northern shore", "through the narrow valley", "across the quiet village"]
TIMES = ["yesterday", "this morning", "every Thursday", "at midnight", "before the storm", "after lunch",
         "in early autumn", "during the long winter", "last June", "at dawn"]
ADVERBS = ["slowly", "eagerly", "quietly", "cheerfully", "carefully", "boldly", "awkwardly", "thoroughly"]
QUESTION_STARTS = ["Why did", "Where did", "How often did", "When did"]
NUMBERS = ["three", "seven", "twelve", "forty", "ninety", "a hundred", "eleven", "six"]

TEMPLATES = [
    "{name} {verb} the {adj} {noun} {place}.",
    "{time}, {name} {adv} {verb} a {adj} {noun}.",
    "The {adj} {noun} was {place} {time}.",
    "{q} {name} leave the {noun} {place}?",
    "We counted {num} {adj} {noun}s {place}.",
    "Please bring the {noun} and the {noun2} {time}.",
    "{name} said the {noun} looked {adj} and rather {adj2}.",
    "Nobody expected {name} to find a {adj} {noun} {place}.",
    "A {adj} {noun} is worth more than {num} {noun2}s.",
    "{name} and {name2} {adv} {verb} the {noun}.",
    "Could you hear the {noun} {place}?",
    "{time} the {noun2} seemed {adj}, but the {noun} was {adj2}.",
]


def generate_sentences(n: int, seed: int | str) -> list[str]:
    """``n`` distinct sentences (4-15 words), identical for the same ``seed``."""
    rng = random.Random(f"synthvox-text-{seed}")
    out: list[str] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 100 * n + 1000:
            raise RuntimeError(f"could not generate {n} distinct sentences")
        fill = dict(name=rng.choice(NAMES), name2=rng.choice(NAMES), noun=rng.choice(NOUNS),
                    noun2=rng.choice(NOUNS), adj=rng.choice(ADJECTIVES), adj2=rng.choice(ADJECTIVES),
                    verb=rng.choice(VERBS_PAST), place=rng.choice(PLACES), time=rng.choice(TIMES),
                    adv=rng.choice(ADVERBS), q=rng.choice(QUESTION_STARTS), num=rng.choice(NUMBERS))
        if fill["name"] == fill["name2"] or fill["noun"] == fill["noun2"] or fill["adj"] == fill["adj2"]:
            continue
        s = rng.choice(TEMPLATES).format(**fill)
        s = s[0].upper() + s[1:]
        if not 4 <= len(s.split()) <= 15 or s in seen:
            continue
        seen.add(s)
        out.append(s)
    return out
