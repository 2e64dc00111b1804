"""Multiple-choice extraction by commitment: the letter a completion finally
commits to, the way a careful reader finds it.

Reasoning models deliberate in the open: they mention every letter, try an
answer and take it back, ask themselves ``is the answer B?``, eliminate
options and only then commit. So the extractor does not let the first rule
that matches decide; it collects every *commitment* in the text with its
position and strength, and the last one wins. docs/gpqa.md shows the rules
with examples.

0. Reasoning is set apart (:func:`tasks.extract.think_parts`): the visible
   text is read first, then closed ``<think>`` blocks; an unclosed block (the
   output was cut while thinking) is read last and reported as
   ``where="unclosed_reasoning"``, which the GPQA scorer scores ``no_answer``
   by default (``-T truncated=extract`` credits it).
1. Commitments, each at its offset:

   * explicit markers: an ``answer:`` label (``ANSWER: C``, ``**Final
     Answer:** (c)``, ``Final: C``) and ``\\boxed{...}``;
   * phrases: ``the (correct) answer/option/choice is C``, ``I'll go with
     C``, ``C is correct``, eliminations (``only D remains``, ``leaving D``,
     ``by elimination, C``), and a last line that is only a letter;
   * conclusions, weaker: a letter closing a sentence after ``so``,
     ``gives``, ``points to``, ``it's``, ``that's`` ... (``...so **D**.``).

   A mention is not a commitment when it is a question (``answer: B?``),
   negated (``Answer: B can't be right``, ``C fails a check``), conditional
   or hypothetical (``the answer would be B if ...``, ``if the answer is
   B``, ``one might think the answer is B``), or hedged (``(A) or maybe
   (B)``, ``B or C``).
2. The last commitment wins, with one exception: after an explicit marker,
   a weak conclusion counts only when a self-correction (``wait``,
   ``actually``, ``hold on``, ``I made an error``) comes between them, so an
   aside after ``ANSWER: C`` does not overturn it while ``Redoing it, the
   correct answer is D`` does.
3. Only when nothing commits: the option's text as the last line, or inside
   a concluding last line (``so it decreases to one third ...``). Unfinished
   or non-concluding text (``The total available is 33.9 MeV, which is
   split between``, an echoed option list) commits to nothing.

After a marker or phrase the payload may be a letter (``C``, ``(C)``,
``c)``, ``Option C``, ``$\\mathbf{C}$``; lowercase ``a`` only when followed by
punctuation or the line's end, since it is usually the article) or an
option's text. Letters outside the task's letters never match, and a letter
inside an option's text (``Vitamin B12``) is not a letter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

from tasks.extract import (MAX_PAYLOAD, answer_lines, boxed_contents, normalize_text,
                           think_parts)
from tasks.choice_payload import ORDINAL_PLACES, parse_choice, takes_back
from tasks.choice_voice import (_CONDITIONAL_SENTENCE, _DISOWNED, _HYPOTHETICAL, _SUPPOSED_BEFORE,
                                _clause_before, _named_letters, _sentence_around,
                                _supposed, _supposed_clause)

__all__ = ["Choice", "extract_choice", "parse_choice"]

# Only the last this-many candidates of a kind are read (the last one counts anyway);
# keeps pathological completions (ten thousand "Answer:" lines) linear.
MAX_TRIES = 200

EXPLICIT, STRONG, WEAK = 3, 2, 1


@dataclass(frozen=True)
class Choice:
    """An extracted letter and how it was found."""

    letter: str
    # "answer_line", "boxed", "phrase", "elimination", "conclusion", "lone_letter",
    # "option_text"
    rule: str
    where: str  # "text", "reasoning" or "unclosed_reasoning"
    offset: int = -1  # where the commitment starts, within its part
    context: str = ""  # the text around it, for a person checking the verdict
    line: str = ""  # the commitment's line as written, from its start (to find it again)
    # every letter the part commits to, in order of first commitment: more than one
    # means the completion changed its mind (evals audit lists those)
    committed: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Candidate:
    pos: int
    letter: str
    rule: str
    strength: int
    tentative: bool = False  # "I'm leaning towards A": counts only in a finished text


# "Final: C", "Final choice: (b)" (the answer: labels come from tasks.extract)
# "Final: C", "Correct choice: B", "My pick: C" (the answer: labels come from tasks.extract)
_FINAL_LABEL = re.compile(
    r"(?<![A-Za-z])(?:final|(?:final|correct|my|best)\s+(?:choice|option|pick|verdict|guess))"
    r"\s*(?:\*\*|__)?\s*[:：]", re.I)
# A heading or bold line that is only "Answer" / "Final Answer": the next line is the payload.
_ANSWER_HEADING = re.compile(r"^[ \t#*_>]*(?:final(?:\s+answer)?|answer)[ \t*_:]*$", re.I | re.M)
_PHRASE = re.compile(
    r"(?<![A-Za-z])(?:answer|option|choice|letter)s?(?:\s+(?:here|then|now|overall|itself|"
    r"i(?:'d|’d|\s+would|'ll|’ll|\s+will)?\s+give|(?:i|we)\s+(?:\w+\s+)?(?:want|mean|need)))?"
    r"\s*(?:(?:\*\*|__)\s*)?"
    r"(?P<verb>is|would\s+be|should\s+be|must\s+be|will\s+be|has\s+to\s+be|appears\s+to\s+be|"
    r"seems\s+to\s+be|=)(?![A-Za-z])"
    r"|(?<![A-Za-z])(?:right|correct|best)\s+one\s+is(?![A-Za-z])"
    r"|(?<![A-Za-z])(?:(?:i|we)(?:\s+will|\s+would|'ll|’ll|'d|’d)?(?:\s+\w+ly)?\s+"
    r"(?:choose|pick|select|say|guess)"
    r"|(?:i\s+am\s+|i'm\s+|i’m\s+)?going\s+(?:with|w/)"
    r"|(?:i(?:'ll|’ll|\s+will)\s+)?go\s+(?:with|w/)"
    r"|(?:i'm\s+|i’m\s+|i\s+am\s+)?(?:committing|commit)\s+to"
    r"|(?P<lean>(?:i(?:'d|’d|\s+would)\s+)?(?:lean|leaning)\s+(?:toward|towards|to))"
    r"|(?:i(?:'ll|’ll|\s+will)\s+)?(?:settle|settling)\s+on"
    r"|(?:revise|revising|change|changing|switch|switching)\s+(?:my\s+answer\s+|it\s+)?to"
    r"|(?:i(?:'ll|’ll|\s+will)\s+)?(?:stick|sticking)\s+with|i(?:'ll|’ll|\s+will)\s+keep"
    r"|my\s+(?P<final>final\s+)?(?:best\s+)?(?:answer|choice|guess|pick)\s*(?:is)?)"
    r"(?![A-Za-z])",
    re.I)
_REMAINING = re.compile(
    r"(?<![A-Za-z])(?:(?:the\s+)?(?:only\s+)?(?:remaining|surviving)\s+"
    r"(?:option|choice|one|answer|candidate|possibility|value|route)"
    r"|(?:one|option|choice)\s+(?:that's|that’s|that\s+is|which\s+is)\s+left"
    r"|only\s+(?:one|option|choice|candidate)\s+(?:left|remaining)"
    r"|(?:that\s+|which\s+|this\s+)?(?:leaves|leaving|left\s+with)(?:\s+us)?(?:\s+with)?"
    r"(?:\s+only)?)"
    r"(?:\s+is)?\s*[,:—–-]?", re.I)
# "the third option", "the last one": an option named by its place in the list
_ORDINAL_COMMIT = re.compile(
    r"(?<![A-Za-z])the\s+(?P<place>first|second|third|fourth|fifth|last)\s+"
    r"(?:option|choice|one)\b(?:\s+(?P<verb>survives|remains|stands|holds(?:\s+up)?|works|"
    r"is\s+(?:correct|right|the\s+answer|it))\b|(?P<end>\s*[.!]?\s*$))", re.I | re.M)
# After the last commitment, the completion says it has not decided after all.
_UNDECIDED = re.compile(
    r"\b(?:can't|can’t|cannot|can\s+not)\s+(?:settle|decide|choose|tell\s+which)|"
    r"(?:really\s+)?(?:don't|don’t|do\s+not)\s+know\s*(?:which|[.!]|$)|flip-?flop|"
    r"torn\s+between|undecided|no\s+idea\s+which", re.I)
_SELF_CORRECTION = re.compile(
    r"\b(?:wait|actually|hold\s+on|correction|on\s+second\s+thought|scratch\s+that|"
    r"made\s+an?\s+(?:error|mistake)|i\s+was\s+wrong|that(?:'s|’s|\s+is|\s+was)\s+wrong|"
    r"let\s+me\s+(?:redo|recompute|re-?check|reconsider|recalculate)|redoing|re-doing|"
    r"recomputing|recalculating|dropped\s+a|no,|was\s+wrong|oops|made\s+a\s+mistake|"
    r"revise|changing\s+my\s+answer)",
    re.I)


def _letter_token(letters: str, tag: str = "") -> str:
    """A letter as models write it after a phrase: ``D``, ``(d)``, ``**D**``,
    ``$\\mathbf{D}$``, ``option D``. Bare letters must be uppercase. ``tag`` keeps
    group names unique when one pattern holds several tokens."""
    up = re.escape(letters.upper())
    both = up + re.escape(letters.lower())
    return (r"(?:\*\*|__)?\$?\s*(?:\\(?:mathbf|textbf|text|mathrm)\s*\{)?\s*"
            r"(?:(?i:option|choice)\s+)?"
            r"(?:[\(\[]\s*(?P<bracketed" + tag + r">[" + both + r"])\s*[\)\]]"
            r"|(?<![A-Za-z0-9])(?P<bare" + tag + r">[" + up
            + r"])(?![A-Za-z0-9]))"
            r"\s*\}?\s*\$?(?:\*\*|__)?")


def _conclusion_token(letters: str) -> str:
    """A letter that ends a concluding sentence: ``D``, ``(d)``, ``**D**``, ``option c``;
    a bare lowercase letter too (``so it's d.``), except ``a`` at the end of the text,
    which is usually an article cut off."""
    up = re.escape(letters.upper())
    both = up + re.escape(letters.lower())
    no_a = re.escape(letters.upper()) + re.escape(letters.lower().replace("a", ""))
    return (r"(?:\*\*|__)?\$?\s*(?:\\(?:mathbf|textbf|text|mathrm)\s*\{)?\s*"
            r"(?:(?i:the\s+(?:first|second|third|fourth|last)\s+(?:option|choice|one)),?\s+)?"
            r"(?:(?i:option|choice)\s+(?P<bare6>[" + both + r"])(?![A-Za-z0-9])"
            r"|(?:(?i:option|choice)\s+)?[\(\[]\s*(?P<bracketed>[" + both + r"])\s*[\)\]]"
            r"|(?<![A-Za-z0-9])(?P<bare>[" + no_a + r"])(?![A-Za-z0-9])"
            r"|(?<![A-Za-z0-9])(?P<bare7>a)(?=\s*[.!]|,?\s+not\s))")


@lru_cache(maxsize=32)
def _patterns(letters: str) -> dict[str, re.Pattern]:
    token = _letter_token(letters)
    up = re.escape(letters.upper())
    both = up + re.escape(letters.lower())
    return {
        # "C is correct", "(c) is the right answer", "Option C is the best choice"
        "reversed": re.compile(
            r"(?:(?<![A-Za-z])(?i:option|choice)\s*)?"
            r"(?:[\(\[]([" + both + r"])[\)\]]|(?<![A-Za-z0-9])([" + up + r"])(?![A-Za-z0-9]))"
            r"\**\s+(?i:is|must\s+be)\s+(?i:the\s+)?(?i:correct|right|best|true)"
            r"(?![A-Za-z])"),
        "elimination": re.compile(
            r"(?i:only)\s+" + token + r"\s*(?i:remains|is\s+left|survives|is\s+consistent|"
            r"works|fits|holds\s+up|is\s+possible|stands)"
            r"|" + _letter_token(letters, "2")
            + r"\s+(?i:is|being)\s+(?i:the\s+)?(?i:only)\s+(?i:one|option|choice|candidate|answer)"
            r"(?i:\s+(?:left|remaining|standing|that))"
            r"|(?i:leaving|leaves|left\s+with)(?:\s+(?i:us))?(?:\s+(?i:with))?(?:\s+(?i:only))?\s+"
            + _letter_token(letters, "3")
            + r"|(?i:by\s+elimination)[\s,:]*(?:(?i:the\s+answer\s+is|it(?:'s|’s|\s+is))\s+)?"
            + _letter_token(letters, "4")),
        # a letter closing a sentence after a concluding word: "...so **D**.",
        # "Leaving 18, i.e. (C).", "the one in option A.", "so it's A, not B"
        "conclusion": re.compile(
            r"(?:(?<![A-Za-z])(?i:so|thus|hence|therefore|gives|giving|yields|yielding|"
            r"leads\s+to|points\s+to|corresponds\s+to|matches|it's|it’s|it\s+is|that's|that’s|"
            r"that\s+is|which\s+is|actually|must\s+be|final(?:ly)?|i\.e\.|on\s+balance|"
            r"overall|in\s+conclusion|in\s+short|clearly|definitely|yeah|yes|okay|ok)"
            r"(?![A-Za-z])[\s,:]*(?:(?i:it's|it’s|it\s+is|the\s+answer\s+is)\s+)?"
            r"(?:(?i:just|simply|definitely|clearly)\s+)?"
            r"|(?:=>|⇒|→|->)\s*|(?P<comma>[,:—–]|(?<![A-Za-z])(?=(?i:option|choice)\s))\s*)"
            + _conclusion_token(letters) + r"\s*\}?\s*\$?(?:\*\*|__)?"
            r"(?=\s*[.!]|\s*$|,\s*(?i:which|that)\s+(?i:is|'s|’s)\s+(?i:my|the|our)\b"
            r"|,?\s+(?i:not)\s+[\(\[]?[" + up + r"]\b|\s+(?i:it\s+is)\b"
            r"|\s+(?i:lol|obviously|for\s+sure|i\s+think|here|then|definitely)\b"
            r"|(?P<apposition>,\s))",
            re.M),
        "lone": re.compile(
            r"^[\s*_`>#\-]*(?:(?:yeah|yes|ok|okay|so|right|final|definitely|clearly)\s*[,:]?\s*)?"
            r"(?:(?:option|choice|answer)\s*[:#]?\s*)?[\(\[]?\s*([" + both
            + r"])\s*[\)\]]?[\s.*_`!]*$", re.I),
    }


# The text's last sentence: after the last sentence end, line break or arrow.
# "i.e. D.", "e.g. D.", "vs. A.": the letter after an abbreviation ends no sentence.
_ABBREVIATION_BEFORE = re.compile(r"\b(?:i\.e|e\.g|vs|cf|fig|figs|eq|eqs|approx|etc|no|resp)\.\s*\Z",
                                  re.I)
_LAST_SENTENCE = re.compile(r"(?:^|(?<=[.!?])\s+|\n|→|->|=>|⇒)([^\n.!?→]{1,60}[.!]*)\s*$")


@lru_cache(maxsize=32)
def _letter_sentence(letters: str) -> re.Pattern:
    """A closing sentence that is just a letter, as people end informal answers:
    ``d.``, ``ok so b``, ``(d) for sure``, ``D it is.``, ``c obviously``."""
    both = re.escape(letters.upper()) + re.escape(letters.lower())
    return re.compile(
        r"^\s*(?:(?:ok(?:ay)?|so|hence|thus|therefore|just|yeah|yes|answer|final)[\s,:]+)*"
        r"(?:\*\*|__)?[\(\[]?\s*([" + both + r"])\s*[\)\]]?(?:\*\*|__)?"
        r"(?:[\s,]+(?:it\s+is|for\s+sure|obviously|definitely|clearly|i\s+think|easy|lol|"
        r"then|confirmed|probably|of\s+course))?\s*[.!]*\s*$", re.I)


def _letter_of(m: re.Match) -> str:
    for name, value in m.groupdict().items():
        if value and (name.startswith("bracketed") or name.startswith("bare")):
            return value.upper()
    raise AssertionError("a letter pattern matched without a letter")


def _commitments(text: str, letters: str, options) -> list[_Candidate]:
    pats = _patterns(letters)
    found: list[_Candidate] = []

    def payloads(spans, rule: str, strength: int) -> None:
        for pos, payload in spans[-MAX_TRIES:]:
            letter = parse_choice(payload, letters, options)
            if letter and not _supposed(text, pos):
                found.append(_Candidate(pos, letter, rule, strength))

    payloads(answer_lines(text), "answer_line", EXPLICIT)
    payloads(boxed_contents(text), "boxed", EXPLICIT)
    payloads([(m.start(), _line_from(text, m.end())) for m in _FINAL_LABEL.finditer(text)],
             "answer_line", EXPLICIT)
    for m in list(_PHRASE.finditer(text))[-MAX_TRIES:]:
        before = _clause_before(text, m.start())
        if _supposed_clause(text, m.start()) or _DISOWNED.search(before):
            continue
        verb = (m.group("verb") or "").lower()
        if verb.startswith(("would", "should", "will")) and \
                _CONDITIONAL_SENTENCE.search(_sentence_around(text, m.start(), m.end())):
            continue  # "the answer would be B if the field were reversed"
        letter = parse_choice(_line_from(text, m.end()), letters, options)
        if letter:
            hedged = re.search(r"\b(?:maybe|perhaps|possibly|probably\s+not|might)\b",
                               before, re.I)
            strength = EXPLICIT if m.group("final") else WEAK if hedged else STRONG
            found.append(_Candidate(m.start(), letter, "phrase", strength,
                                    bool(hedged or m.group("lean"))))
    named = _named_letters(text, letters)
    for m in list(pats["reversed"].finditer(text))[-MAX_TRIES:]:
        if _supposed_clause(text, m.start()) or \
                re.match(r"[\s,]*(?:only\s+)?(?:if|unless|when)\b", text[m.end():], re.I):
            continue
        if (m.group(2) and m.group(2) in named) or takes_back(text[m.end():], letters):
            continue  # "C is correct dimensionally" where C is the capacitance; "C is correct?"
        found.append(_Candidate(m.start(), (m.group(1) or m.group(2)).upper(), "phrase", STRONG))
    for m in list(pats["elimination"].finditer(text))[-MAX_TRIES:]:
        if not takes_back(text[m.end():], letters) and \
                not _supposed_clause(text, m.start()):
            found.append(_Candidate(m.start(), _letter_of(m), "elimination", STRONG))
    for m in list(pats["conclusion"].finditer(text))[-MAX_TRIES:]:
        before = _clause_before(text, m.start())
        if _supposed_clause(text, m.start()):
            continue
        if m.group("comma") is not None and (m.group("apposition") or not (
                _CONCLUDING.search(before) or (
                    m.group("bare6") and m.group("comma") and len(before.split()) >= 3))):
            continue  # ", C." ends a concluding sentence, or ", option C." an apposition
        if takes_back(text[m.end():], letters):
            continue  # "It's A. Or B."
        if any(m.groupdict().get(g) for g in ("bare", "bare5", "bare7")) \
                and _letter_of(m) in named:
            continue  # "..., which is A." where A names a point
        sentence = _sentence_around(text, m.start(), m.end())
        # what follows the sentence's last "so"/"but" is the writer's own conclusion
        own = re.split(r"\b(?:so|but|however|therefore|thus|hence)\b", sentence, flags=re.I)[-1]
        if _HYPOTHETICAL.search(own if own.strip() else sentence):
            continue  # "a student who forgets the 1/2 gets 10 J, which is D."
        found.append(_Candidate(m.start(), _letter_of(m), "conclusion", WEAK))
    for m in list(_ORDINAL_COMMIT.finditer(text))[-MAX_TRIES:]:
        before = _clause_before(text, m.start())
        if _SUPPOSED_BEFORE.search(before) or (m.group("end") and not (
                _CONCLUDING.search(before) or re.search(r"\b(?:is|it's|it’s)\s*$|[—–:-]\s*$",
                                                         before, re.I))):
            continue
        place = m.group("place").lower()
        index = len(options or letters) - 1 if place == "last" else ORDINAL_PLACES[place]
        if index < len(letters):
            found.append(_Candidate(m.start(), letters[index], "elimination" if m.group("verb")
                                    else "conclusion", STRONG if m.group("verb") else WEAK))
    # "the remaining option, C", "Hence the remaining choice: (R)-butan-2-ol."
    payloads([(m.start(), _line_from(text, m.end())) for m in _REMAINING.finditer(text)
              if not _supposed_clause(text, m.start())][-MAX_TRIES:],
             "elimination", STRONG)
    headed = []
    for m in list(_ANSWER_HEADING.finditer(text))[-MAX_TRIES:]:
        rest = text[m.end():].lstrip()
        if rest:
            headed.append((m.start(), _line_from(rest, 0)))
    payloads(headed, "answer_line", EXPLICIT)
    sentence = _LAST_SENTENCE.search(text)
    if sentence and not _ABBREVIATION_BEFORE.search(text, 0, sentence.start(1)):
        m = _letter_sentence(letters).match(sentence.group(1))
        start = sentence.start(1)
        if m and not any(c.pos >= start for c in found):
            found.append(_Candidate(start, m.group(1).upper(), "lone_letter", STRONG))
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if lines:
        last = " ".join(lines[-1].split())
        m = pats["lone"].match(last) if len(last) <= 40 else None
        start = text.rfind(lines[-1])
        if m and not any(c.pos >= start for c in found):  # "ANSWER: B" is read as a label
            found.append(_Candidate(start, m.group(1).upper(), "lone_letter", STRONG))
    return found


def _line_from(text: str, start: int) -> str:
    end = text.find("\n", start, start + MAX_PAYLOAD)
    return text[start:start + MAX_PAYLOAD] if end < 0 else text[start:end]


def _final(found: list[_Candidate], text: str) -> _Candidate | None:
    """The last commitment; a weak one after an explicit marker counts only past a
    self-correction."""
    if not found:
        return None
    found = sorted(found, key=lambda c: c.pos)
    firm = [c.pos for c in found if c.strength > WEAK]
    last_firm = firm[-1] if firm else None
    for c in reversed(found):
        if c.strength > WEAK or last_firm is None or c.pos <= last_firm:
            return c
        if _SELF_CORRECTION.search(text, last_firm, c.pos):
            return c
    return None


# After the last commitment: it is taken back and nothing replaces it.
_RETRACTED = re.compile(
    r"\b(?:wait[.!,]*\s*\Z|on\s+second\s+thought|scratch\s+that|that(?:'s|’s|\s+is|\s+was)"
    r"\s+(?:wrong|not\s+right)|(?:i\s+)?made\s+an?\s+(?:error|mistake)|contradicts|"
    r"(?:let\s+me|need\s+to|have\s+to)\s+(?:redo|recompute|reconsider|recalculate|rethink)|"
    r"no,?\s+wait|"
    r"i\s+(?:now\s+)?reali[sz]e|let\s+me\s+(?:re-?check|check\s+again|double-?check)\W*\Z)\b",
    re.I)


_CONCLUDING = re.compile(
    r"\b(?:so|thus|hence|therefore|answer|final|finally|conclude|conclusion|overall|"
    r"gives|yields|result|must|correct|i\.e\.|best|likely|balance)\b", re.I)
# A last line that states an option only as a possibility is no commitment.
_TENTATIVE = re.compile(
    r"\b(?:if|would|could|might|maybe|perhaps|possibly|not\s+sure|unsure|can't|cannot|"
    r"whether|or)\b|\?", re.I)
_LIST_ITEM = re.compile(r"^[\s*_>#-]*[\(\[]?[A-Za-z][\)\].:]\s")
_LEADING_SUBJECT = re.compile(r"^(?:it|they|this|the|a|an)\s+")


def _option_text(text: str, letters: str, options) -> tuple[str, int] | None:
    if not options:
        return None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or len(lines[-1]) > 4 * MAX_PAYLOAD:
        return None
    last = normalize_text(lines[-1])
    offset = text.rfind(lines[-1])
    norms = [normalize_text(o) for o in options]
    for i, o in enumerate(norms):
        if o and last == o and i < len(letters):
            return letters[i], offset
    # Containment counts only in a finished statement: a concluding sentence, or one
    # that ends on the option's text; never in a list item or a tentative line.
    raw_last = lines[-1].rstrip(" *_`$\"'”’)")
    if not raw_last.endswith((".", "!")) or _LIST_ITEM.match(lines[-1]) \
            or _TENTATIVE.search(lines[-1]):
        return None
    concluding = bool(_CONCLUDING.search(raw_last))
    # "It decreases to one third ..." is stated as "the energy decreases to one third ..."
    cores = [_LEADING_SUBJECT.sub("", o) if len(_LEADING_SUBJECT.sub("", o)) >= 12 else o
             for o in norms]
    hits = []
    for i, o in enumerate(cores):
        if o and i < len(letters):
            spans = [(m.start(), m.end()) for m in
                     re.finditer(r"(?<![a-z0-9])" + re.escape(o) + r"(?![a-z0-9])", last)]
            at_end = bool(spans) and spans[-1][1] == len(last)
            # a short option ("2/3", "50%") counts where it ends the statement
            if spans and (at_end or (len(o) >= 4 and (concluding or len(o) >= 8))):
                hits.append((i, spans))
    # An option whose every occurrence lies inside a longer option's occurrence does not count.
    kept = [i for i, spans in hits
            if any(not any(j != i and len(cores[j]) > len(cores[i]) and a <= s and e <= b
                           for j, other in hits for a, b in other)
                   for s, e in spans)]
    if len(kept) == 1:
        return letters[kept[0]], offset
    return None


def _read(text: str, letters: str, options) -> tuple[str, str, int, tuple[str, ...]] | None:
    found = _commitments(text, letters, options)
    final = _final(found, text)
    if final is not None and _UNDECIDED.search(text, final.pos):
        return None  # "Answer: A. No, B. Or A... I can't settle it."
    if final is not None and _RETRACTED.search(text, final.pos + 1):
        return None  # "So the answer is B. Wait, that's wrong: ... Let me recompute."
    if final is not None and final.tentative and \
            not text.rstrip().rstrip("*_`$)\"'”’").endswith((".", "!", "?")):
        return None  # "I'm leaning towards A but need to rule out folate, and" (cut off)
    if final is not None:
        committed = tuple(dict.fromkeys(c.letter for c in sorted(found, key=lambda c: c.pos)
                                        if c.strength > WEAK))
        return final.letter, final.rule, final.pos, committed or (final.letter,)
    by_text = _option_text(text, letters, options)
    if by_text:
        return by_text[0], "option_text", by_text[1], (by_text[0],)
    return None


def extract_choice(text: str, options: Sequence[str] | None = None,
                   letters: str = "ABCD") -> Choice | None:
    """The multiple-choice letter a completion finally commits to, or None.

    ``options`` are the option texts in letter order (optional: without them an
    answer given as text is not recognised). See the module docstring for the
    rules. An answer found only in an unclosed reasoning block is returned with
    ``where="unclosed_reasoning"``; whether it counts is the caller's policy.
    """
    letters = letters.upper()
    if options is not None:
        options = list(options)[:len(letters)]
    parts = think_parts(text or "")
    for where, part in (("text", parts.visible), ("reasoning", parts.reasoning),
                        ("unclosed_reasoning", parts.unclosed)):
        if part.strip():
            found = _read(part, letters, options)
            if found:
                at = max(0, found[2])
                context = " ".join(part[max(0, at - 80):at + 120].split())
                line_end = part.find("\n", at)
                line = part[at:line_end if line_end >= 0 else len(part)][:200].rstrip()
                return Choice(found[0], found[1], where, offset=found[2],
                              committed=found[3], context=context, line=line)
    return None
