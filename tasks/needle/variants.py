"""The RULER variants (Hsieh et al. 2024): what is hidden, what is asked, what counts.

Everything a variant needs to rebuild its prompt and to score it is drawn
here from one seeded generator per sample and kept in the sample's metadata
(a few keys and numbers), so a Sample stays small and the prompt text can be
rebuilt identically when the sample is sent.

=============  ==================================================  =========
variant        hidden / asked                                      scoring
=============  ==================================================  =========
single         one key with one value; its value                   exact
multikey       ``needles`` keys, one asked, the rest distractors   exact
multivalue     one key with ``needles`` values; all of them        recall
multiquery     ``needles`` keys; the values of all of them         recall
vt             a chain VAR A = n, VAR B = VAR A, ... of            recall
               ``needles`` hops; every name holding n
cwe            a numbered word list; its ``needles`` most          recall
               frequent words (RULER's common-word extraction)
=============  ==================================================  =========

*exact*: 1 when the asked value is in the answer and no distractor value
is; *recall*: the fraction of expected items present in the answer.
"""

from __future__ import annotations

import random
from typing import Any

from evals.task import TaskError

Message = dict[str, str]

VARIANTS = ("single", "multikey", "multivalue", "multiquery", "vt", "cwe")
ALIASES = {"niah_single": "single", "s": "single", "mk": "multikey", "niah_multikey": "multikey",
           "mv": "multivalue", "niah_multivalue": "multivalue", "mq": "multiquery",
           "niah_multiquery": "multiquery", "variable_tracking": "vt",
           "common_words": "cwe", "common_word_extraction": "cwe"}
DEFAULT_NEEDLES = {"single": 1, "multikey": 4, "multivalue": 4, "multiquery": 4, "vt": 4,
                   "cwe": 10}
EXACT = frozenset({"single", "multikey"})  # the others score recall

# Key words: deliberately disjoint from the noise haystack's vocabulary.
_KEY_ADJ = ("amber azure brave calm cobalt coral crimson dapper eager fancy fearless "
            "frosty giddy glossy hasty icy jolly lucky mellow misty nimble olive plucky "
            "proud rapid rusty scarlet shiny silky snowy spicy swift tawny velvet witty "
            "zesty").split()
_KEY_NOUN = ("falcon otter badger heron walrus lynx panda parrot beetle salmon tiger "
             "donkey ferret gecko hornet jackal koala lemur marmot newt ocelot pelican "
             "quokka raven stork toucan urchin viper weasel yak zebra bison camel dingo "
             "egret").split()
CONSONANTS = "bdfghjklmnprstvz"
VOWELS = "aeiou"
WORD_SPACE = (len(CONSONANTS) * len(VOWELS)) ** 3  # three-syllable pseudo-words

NIAH_INTRO = ("Some special magic numbers are hidden within the following text. Make sure "
              "to memorize them. I will quiz you about the numbers afterwards.")
VT_INTRO = ("Memorize and track the chain of variable assignments hidden in the following "
            "text.")
CWE_INTRO = ("Below is a numbered list of words. In these words, some appear more often "
             "than others. Memorize the ones that appear most often.")


def normalize_variant(name: str) -> str:
    v = name.strip().lower().replace("-", "_")
    v = ALIASES.get(v, v)
    if v not in VARIANTS:
        raise TaskError(f"needle: unknown variant {name!r} (known: {', '.join(VARIANTS)})")
    return v


def needle_count(variant: str, needles: int) -> int:
    """The variant's count: ``needles``, or RULER's default when 0."""
    n = needles or DEFAULT_NEEDLES[variant]
    if variant == "single" and n != 1:
        raise TaskError("needle: variant single hides one needle; use multikey, "
                        "multivalue or multiquery for more")
    if variant == "multikey" and n < 2:
        raise TaskError("needle: multikey needs needles >= 2 (one asked, the rest distractors)")
    if n < 1 or n > 100:
        raise TaskError(f"needle: needles={n} must be between 1 and 100")
    return n


def pseudo_word(index: int) -> str:
    """The ``index``-th three-syllable pseudo-word (``index < WORD_SPACE``)."""
    out = []
    for _ in range(3):
        index, syl = divmod(index, len(CONSONANTS) * len(VOWELS))
        out.append(CONSONANTS[syl // len(VOWELS)] + VOWELS[syl % len(VOWELS)])
    return "".join(out)


def make_content(variant: str, n: int, rng: random.Random) -> tuple[dict[str, Any], list[str], str]:
    """``(metadata, target, solution)``: the hidden facts, the expected items, a gold answer."""
    if variant == "cwe":
        words = [pseudo_word(i) for i in rng.sample(range(WORD_SPACE), n)]
        return {"words": words}, words, ", ".join(words)
    if variant == "vt":
        names: list[str] = []
        while len(names) < n + 1:
            name = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(5))
            if name not in names:
                names.append(name)
        value = str(rng.randint(10000, 99999))
        solution = f"The variables assigned the value {value} are: {', '.join(names)}."
        return {"chain": names, "value": value}, names, solution
    key_count = 1 if variant in ("single", "multivalue") else n
    keys = [f"{_KEY_ADJ[i // len(_KEY_NOUN)]}-{_KEY_NOUN[i % len(_KEY_NOUN)]}"
            for i in rng.sample(range(len(_KEY_ADJ) * len(_KEY_NOUN)), key_count)]
    value_count = n if variant == "multivalue" else key_count
    values = [str(v) for v in rng.sample(range(1_000_000, 10_000_000), value_count)]
    if variant == "multivalue":
        pairs = [(keys[0], v) for v in values]
        return ({"needles": pairs, "query": [keys[0]]}, values,
                f"The special magic numbers for {keys[0]} are: {', '.join(values)}.")
    pairs = list(zip(keys, values))
    if variant == "multiquery":
        listed = "; ".join(f"{k}: {v}" for k, v in pairs)
        return {"needles": pairs, "query": keys}, values, f"The special magic numbers are {listed}."
    meta: dict[str, Any] = {"needles": pairs, "query": [keys[0]]}
    if variant == "multikey":
        meta["distractors"] = values[1:]
    return meta, [values[0]], f"The special magic number for {keys[0]} is {values[0]}."


def needle_sentences(meta: dict[str, Any]) -> list[str]:
    """The sentences to hide, in order; the first one goes at the requested depth."""
    if meta["variant"] == "vt":
        chain, value = meta["chain"], meta["value"]
        return [f"VAR {chain[0]} = {value}."] + [
            f"VAR {b} = VAR {a}." for a, b in zip(chain, chain[1:])]
    return [f"One of the special magic numbers for {k} is: {v}." for k, v in meta["needles"]]


def needle_depths(meta: dict[str, Any], rng: random.Random) -> list[float]:
    """Requested depth (percent) of each needle sentence.

    The needle that answers the question (for several, the first) sits at the
    cell's depth; the others at random depths, as RULER scatters them. A
    variable chain keeps its order: later hops lie between the first and 100%.
    """
    count = len(needle_sentences(meta))
    depth = float(meta["depth"])
    rest = [rng.uniform(0.0, 100.0) for _ in range(count - 1)]
    if meta["variant"] == "vt":
        rest = sorted(depth + (100.0 - depth) * r / 100.0 for r in rest)
    return [depth] + rest


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def question(meta: dict[str, Any]) -> tuple[str, str]:
    """``(intro, question)`` around the context."""
    v = meta["variant"]
    if v == "cwe":
        n = len(meta["words"])
        return CWE_INTRO, (f"Question: What are the {n} most common words in the above list? "
                           "Answer with the words only, separated by commas.")
    if v == "vt":
        return VT_INTRO, (f"Question: Find all variables that are assigned the value "
                          f"{meta['value']} in the text above, directly or through other "
                          "variables. Answer with their names.")
    query = meta["query"]
    if v in EXACT:
        return NIAH_INTRO, (f"What is the special magic number for {query[0]} mentioned in "
                            "the provided text? Answer with the number.")
    return NIAH_INTRO, (f"What are all the special magic numbers for {_and(query)} mentioned "
                        "in the provided text? Answer with all of them.")


def render(meta: dict[str, Any], context: str) -> list[Message]:
    """The chat messages of a sample around ``context`` (one user turn, as RULER sends)."""
    intro, ask = question(meta)
    return [{"role": "user", "content": f"{intro}\n\n{context}\n\n{ask}"}]
