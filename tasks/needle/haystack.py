"""Haystacks: sentence streams with their token counts, and windows cut from them.

A haystack is a cyclic list of *units*, one sentence each, each carrying its
own leading separator (``" "`` inside a paragraph, ``"\\n\\n"`` at a
paragraph start). Concatenating units therefore reproduces running text, a
unit boundary is always a sentence boundary, and the text can be cut at any
boundary without editing a string.

Sources (``-T haystack=``):

* ``essays``: ``essays.txt`` beside this file, eleven short essays written
  for this project and dedicated to the public domain (CC0);
* ``noise``: grammatical nonsense sentences drawn from a seeded vocabulary,
  in the spirit of RULER's repeated noise sentences;
* a path: a text file, or a directory whose ``*.txt`` and ``*.md`` files are
  read in name order.

Each unit is tokenised once per (tokenizer, haystack) and cached as a prefix
sum, so a window of any length is found with a binary search; a long context
reuses the source cyclically, as RULER repeats its essays.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from evals.task import TaskError

from .tokens import Counter

if TYPE_CHECKING:  # numpy is imported where arrays are made: importing the task stays cheap
    import numpy as np

ESSAYS = Path(__file__).with_name("essays.txt")
MAX_UNIT_CHARS = 1500  # longer "sentences" (code, tables) are split at spaces
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*(?=\s+[\"'(\[]?[A-Z0-9])")

# Noise vocabulary: common words with no digits, so needle values never collide.
_ADJ = ("quiet bright narrow heavy gentle sudden distant patient hollow silver rough pale "
        "steady crooked golden humble restless ancient tidy wild brisk faded ordinary "
        "curious sturdy bitter tender empty crowded plain warm").split()
_NOUN = ("river window basket mountain lantern garden ladder teacher engine harbor village "
         "pocket meadow kettle mirror candle forest bridge library orchard market valley "
         "cabinet tower station island blanket journey compass quarry").split()
_VERB = ("carries watches follows crosses gathers remembers covers holds finds waits near "
         "leaves passes repairs circles shelters measures visits greets").split()
_ADV = ("slowly quietly again today yesterday outside nearby together alone gladly "
        "carefully loudly").split()


@dataclass
class Stream:
    """Units of one haystack source with their token counts, repeated as needed."""

    units: list[str]  # one period of the source
    cum: np.ndarray  # cum[i] = tokens in units[0:i] of the repeated stream, int64

    @property
    def period(self) -> int:
        return len(self.units)

    @property
    def span(self) -> int:
        """Units available in the (virtual) repeated stream."""
        return len(self.cum) - 1

    def text(self, start: int, end: int) -> list[str]:
        """The units start..end-1 of the repeated stream."""
        p = len(self.units)
        return [self.units[i % p] for i in range(start, end)]


def split_units(text: str) -> list[str]:
    """Sentence units with leading separators, paragraphs kept, whitespace normalised."""
    units: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        if not para:
            continue
        sep = "\n\n"
        pos = 0
        cuts = [m.end() for m in _SENTENCE_END.finditer(para)] + [len(para)]
        for cut in cuts:
            sentence = para[pos:cut].strip()
            pos = cut
            if not sentence:
                continue
            for piece in _split_long(sentence):
                units.append(sep + piece)
                sep = " "
    return units


def _split_long(sentence: str) -> list[str]:
    if len(sentence) <= MAX_UNIT_CHARS:
        return [sentence]
    out: list[str] = []
    while len(sentence) > MAX_UNIT_CHARS:
        cut = sentence.rfind(" ", 0, MAX_UNIT_CHARS)
        cut = cut if cut > 0 else MAX_UNIT_CHARS
        out.append(sentence[:cut])
        sentence = sentence[cut:].lstrip()
    return out + ([sentence] if sentence else [])


def noise_units(seed: int, count: int = 4000) -> list[str]:
    """``count`` seeded nonsense sentences, five to a paragraph."""
    rng = random.Random(f"needle-noise:{seed}")
    units = []
    for i in range(count):
        words = [rng.choice(_ADJ), rng.choice(_NOUN), rng.choice(_VERB), "the",
                 rng.choice(_ADJ), rng.choice(_NOUN)]
        if rng.random() < 0.5:
            words.append(rng.choice(_ADV))
        sentence = "The " + " ".join(words) + "."
        units.append(("\n\n" if i % 5 == 0 else " ") + sentence)
    return units


def source_units(haystack: str, seed: int) -> tuple[str, list[str]]:
    """``(label, units)`` of a haystack spec; raises TaskError for a bad one."""
    name = haystack.strip()
    if name.lower() == "essays":
        return "essays", split_units(ESSAYS.read_text(encoding="utf-8"))
    if name.lower() == "noise":
        return f"noise:{seed}", noise_units(seed)
    path = Path(name).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in (".txt", ".md")
                       and p.is_file())
    elif path.is_file():
        files = [path]
    else:
        raise TaskError(f"needle: -T haystack={haystack!r} is not essays, noise, "
                        "or an existing file or directory")
    if not files:
        raise TaskError(f"needle: no .txt or .md files in {path}")
    text = "\n\n".join(p.read_text(encoding="utf-8", errors="replace") for p in files)
    units = split_units(text)
    if len(units) < 2:
        raise TaskError(f"needle: haystack {path} has fewer than two sentences")
    return str(path.resolve()), units


def check_source(haystack: str) -> None:
    """Fail at task build time, not mid-run, for a missing haystack path."""
    name = haystack.strip().lower()
    if name not in ("essays", "noise") and not Path(haystack).expanduser().exists():
        raise TaskError(f"needle: -T haystack={haystack!r} is not essays, noise, "
                        "or an existing file or directory")


@lru_cache(maxsize=8)
def _counted(counter: Counter, haystack: str, seed: int) -> tuple[list[str], np.ndarray]:
    """One period of units and their token counts (the expensive, cached part)."""
    import numpy as np

    _, units = source_units(haystack, seed)
    # The stream is cyclic: the first unit follows the last one.
    counts = np.asarray(counter.unit_counts(units, lead=units[-1]), dtype=np.int64)
    if counts.sum() <= 0:
        raise TaskError(f"needle: haystack {haystack!r} has no tokens")
    return units, counts


def stream(counter: Counter, haystack: str, seed: int, tokens: int) -> Stream:
    """A stream long enough for a ``tokens``-token window starting anywhere in one period."""
    import numpy as np

    units, counts = _counted(counter, haystack, seed)
    period_tokens = int(counts.sum())
    # One period of possible starts, plus the window, plus a period of slack.
    reps = 2 + -(-tokens // period_tokens)
    cum = np.zeros(len(units) * reps + 1, dtype=np.int64)
    np.cumsum(np.tile(counts, reps), out=cum[1:])
    return Stream(units, cum)


def find_window(st: Stream, tokens: int, rng: random.Random) -> tuple[int, int, int]:
    """``(start, end, gap)``: a run of whole units holding ``tokens`` tokens less ``gap``.

    Every start in one period is tried at once (vectorised); among the starts
    whose run fits exactly, or else most closely from below, one is picked at
    random so that samples do not all open on the same sentence.
    """
    import numpy as np

    if tokens <= 0:
        return 0, 0, tokens
    starts = np.arange(st.period, dtype=np.int64)
    goal = st.cum[starts] + tokens
    ends = np.searchsorted(st.cum, goal, side="right") - 1
    ends = np.minimum(ends, st.span)
    gaps = goal - st.cum[ends]
    best = int(gaps.min())
    choices = np.flatnonzero(gaps == best)
    s = int(choices[rng.randrange(len(choices))])
    return s, int(ends[s]), best


def boundary_positions(st: Stream, start: int, end: int) -> np.ndarray:
    """Tokens before each unit boundary of the window start..end (length end-start+1)."""
    return st.cum[start:end + 1] - st.cum[start]


def nearest_boundary(positions: np.ndarray, target: float) -> int:
    """Index of the boundary whose token position is closest to ``target``."""
    i = int(positions.searchsorted(target))
    if i >= len(positions):
        return len(positions) - 1
    if i > 0 and target - positions[i - 1] <= positions[i] - target:
        return i - 1
    return i


def join_with_inserts(units: Sequence[str], inserts: dict[int, list[str]]) -> str:
    """The window's text with needle sentences placed before unit ``i`` (``len(units)``: at the end).

    The first unit loses its leading separator unless a needle precedes it.
    """
    parts: list[str] = []
    first = True
    for i in range(len(units) + 1):
        for needle in inserts.get(i, ()):
            parts.append(needle if first else " " + needle)
            first = False
        if i < len(units):
            parts.append(units[i].lstrip() if first else units[i])
            first = False
    return "".join(parts)
