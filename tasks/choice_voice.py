"""Whose voice a letter is said in: the clause and sentence around a mention, and
whether it is supposed, reported or hypothetical ("if the answer is B", "a naive
calculation gives B"), disowned ("the tempting choice is A"), or a letter used as a
name ("C is the capacitance", "point A"). tasks/choice.py asks these of each
commitment it finds."""

from __future__ import annotations

import re

# The clause before a phrase, when it makes the phrase reported or supposed rather
# than asserted: "if the answer is B", "one might think the answer is B".
_SUPPOSED_BEFORE = re.compile(
    r"(?:\b(?:if|whether|suppose|supposing|assuming|assume|unless|when)\b[^,]*$"
    r"|\b(?:might|would|could|may|to|some|many|students|people|one)\s+"
    r"(?:\w+\s+)?(?:think|thinks|believe|believes|assume|conclude|say|claim|guess|expect)\b.*"
    r"|\b(?:mistake|mistaken|mistakenly|wrongly|incorrectly|naive|naively|tempting|trap|"
    r"distractor|tempted|said|says|suggests|suggested|claims|claimed|states|stated|"
    r"hypothetically|textbook's|textbook’s|key's|key’s|so\s+far|for\s+now|for\s+comparison|"
    r"let's\s+say|let’s\s+say|let\s+us\s+say|forgets?|forgetting|student|students|"
    r"thought|hypothesis|initially|at\s+first)\b.*"
    r"|(?:^|\b(?:so|then|but|and|or|now)\s+)(?:is|was|could)\s+(?:it\s+)?(?:that\s+)?(?:the\s+)?$)",
    re.I | re.S)
# "the wrong answer is C", "the tempting choice is A": named, not chosen
_DISOWNED = re.compile(r"\b(?:wrong|incorrect|naive|tempting|trap|distractor|obvious\s+but)\s*$",
                       re.I)
_CONDITIONAL_SENTENCE = re.compile(r"\b(?:if|were|had|unless|otherwise|assuming|suppose)\b",
                                   re.I)
_CLAUSE_BOUNDARY = re.compile(r"[.!?;\n]")


def _clause_before(text: str, pos: int) -> str:
    start = max(0, pos - 300)
    window = text[start:pos]
    cut = [m.end() for m in _CLAUSE_BOUNDARY.finditer(window)]
    return window[cut[-1]:] if cut else window


def _sentence_around(text: str, pos: int, end: int) -> str:
    return _clause_before(text, pos) + text[pos:end] + \
        _CLAUSE_BOUNDARY.split(text[end:end + 300], maxsplit=1)[0]


# A sentence about what someone else, or a mistake, would give: its letter is no conclusion.
_HYPOTHETICAL = re.compile(
    r"\b(?:would|could|might|mistake|mistakenly|student|students|naive|naively|forgets?|"
    r"forgetting|trap|distractor|for\s+comparison|compared?\s+(?:to|with))\b", re.I)


def _own_clause(text: str, pos: int) -> str:
    """The clause before ``pos`` from its last "but"/"so"/"however": what the writer
    says in their own voice after setting another view aside."""
    return re.split(r"\b(?:but|so(?!\s+far)|however|therefore|thus|hence)\b",
                    _clause_before(text, pos),
                    flags=re.I)[-1]


def _supposed_clause(text: str, pos: int) -> bool:
    return bool(_SUPPOSED_BEFORE.search(_own_clause(text, pos)))


def _supposed(text: str, pos: int) -> bool:
    """A mention under a supposition, a report, or in a hypothetical sentence:
    ``A naive calculation gives \\boxed{B}``, ``One would get B if ...``."""
    if _supposed_clause(text, pos):
        return True
    sentence = _sentence_around(text, pos, pos)
    return bool(re.search(r"\bwould\b", sentence, re.I) and
                re.search(r"\b(?:if|were|had|unless)\b", sentence, re.I))


# A letter defined as a quantity or a name in the text ("C is the capacitance", "let A be",
# "A = 3", "point A"): its bare mentions are that name, so only "(A)" or "option A" count.
_NAMED_LETTER = (r"(?:\b(?:let|where|with|call)\s+([A-Z])\s+(?:be|denote|is)\b"
                 r"|\b([A-Z])\s+(?:denotes|is\s+the\s+(?!correct|right|best|answer|option|"
                 r"choice|only|one|last|first)[a-z]+\b)"
                 r"|\b(?:point|vertex|corner|node|region|panel|figure|fig\.|site|plan|grade|"
                 r"resistor|capacitor|charge|mass|block|particle|body|ball|vector|matrix|set|"
                 r"line|segment|triangle|angle)\s+([A-Z])\b)")


def _named_letters(text: str, letters: str) -> set[str]:
    out = set()
    for m in re.finditer(_NAMED_LETTER, text):
        letter = next(g for g in m.groups() if g)
        if letter in letters:
            out.add(letter)
    return out
