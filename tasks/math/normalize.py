"""String-level normalisation of a math answer (``re`` only, cheap to import).

:func:`normalize` turns what a model or a dataset writes into one spelling,
so that most equal answers become equal strings without sympy: math
delimiters, ``\\left``/``\\right``, ``\\dfrac``/``\\tfrac``, ``\\frac12``,
degrees, ``\\%``, ``\\text{...}`` units, thousands separators, spacing and
trailing periods. It never changes meaning: what it cannot rewrite safely it
leaves for :mod:`tasks.math.symbolic`. docs/math.md lists the rules.
"""

from __future__ import annotations

import re

from tasks.extract import balanced_braces

# Unicode a model may print, spelled as the LaTeX the parser reads. NFKC is not
# used: it would turn "x²" into "x2".
_UNICODE = {
    "\u2212": "-", "\u2013": "-", "\u2014": "-", "\u00d7": "\\times ", "\u00b7": "\\cdot ",
    "\u22c5": "\\cdot ", "\u00f7": "\\div ", "\u03c0": "\\pi ", "\u221e": "\\infty ",
    "\u221a": "\\sqrt", "\u2264": "\\leq ", "\u2265": "\\geq ", "\u2260": "\\neq ",
    "\u00b0": "^\\circ", "\u222a": "\\cup ", "\u2229": "\\cap ", "\u2208": "\\in ",
    "\u00b2": "^2", "\u00b3": "^3", "\u00a0": " ", "\u2009": " ", "\u202f": " ",
    "\u00bd": "\\frac{1}{2}", "\u2205": "\\emptyset ", "\u00b1": "\\pm ",
}
_UNICODE_RE = re.compile("|".join(map(re.escape, _UNICODE)))

# Spacing commands and wrappers that carry no value.
# "\\quadx_2" (spaces lost in a dataset) is still \\quad: no command starts with "quad".
_SPACES = re.compile(r"(?<!\\)\\[,;:!> ]|\\q?quad|~|\\displaystyle|\\limits")
# A command written with its backslash doubled, as a JSON round trip leaves it
# ("\\\\le", "\\\\boxed{"): a LaTeX line break is never followed by these names.
_DOUBLED = re.compile(r"\\\\(?=(?:le|leq|ge|geq|lt|gt|ne|neq|boxed|text|frac|dfrac|tfrac|sqrt"
                      r"|pi|infty|cdot|times|in|cup|cap|pm)(?![A-Za-z]))")
_LEFT_RIGHT = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big)(?![A-Za-z])\s*\.?")
_STYLE = re.compile(r"\\(?:mathrm|mathbf|mathit|mathsf|textbf|textit|textrm|boldsymbol"
                    r"|operatorname|mathnormal|bm|emph|boxed|fbox|mbox|hbox)\s*\{")
_TEXT = re.compile(r"\\text(?:normal|up)?\s*\{")
_FRAC_CMD = re.compile(r"\\[dtc]frac(?![A-Za-z])")
# \frac12, \frac1{x}, \frac{x}2: single-token arguments without braces.
_FRAC_TOKENS = re.compile(r"\\frac\s*([0-9A-Za-z])\s*([0-9A-Za-z])")
_FRAC_FIRST = re.compile(r"\\frac\s*([0-9A-Za-z])\s*\{")
_SQRT_TOKEN = re.compile(r"\\sqrt\s*([0-9A-Za-z])")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\degree(?![A-Za-z])|\\circ(?![A-Za-z])")
_INFTY = re.compile(r"\\infinity(?![A-Za-z])|(?<![A-Za-z\\])inf(?:inity)?(?![A-Za-z])")
_RELATIONS = [(re.compile(r"\\(?:le|leqslant|leq)(?![A-Za-z])"), r"\\leq "),
              (re.compile(r"\\(?:ge|geqslant|geq)(?![A-Za-z])"), r"\\geq "),
              (re.compile(r"\\(?:ne|neq)(?![A-Za-z])"), r"\\neq "),
              (re.compile(r"\\lt(?![A-Za-z])"), "<"), (re.compile(r"\\gt(?![A-Za-z])"), ">"),
              (re.compile(r"<="), r"\\leq "), (re.compile(r">="), r"\\geq "),
              (re.compile(r"(?<=\s)!="), r"\\neq "),
              (re.compile(r"\\(?:varnothing|O)(?![A-Za-z])|\\\{\s*\\\}"), r"\\emptyset "),
              (re.compile(r"\\[lr]?vert(?![A-Za-z])|\\[lr]Vert(?![A-Za-z])"), "|")]
# "x \in [0, 1]" and "x \in \{1, 2\}": the set is the answer.
_MEMBER_PREFIX = re.compile(r"^(?:[A-Za-z]|\\[a-z]+)(?:_\{?\w+\}?)?\s*\\in\s*")
# A thousands group never starts with 0: "0,111" is not 111.
_THOUSANDS = re.compile(r"[+-]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?")
# "and"/"or" between answers, also unspaced: "(11,7)or(7,11)", "W(x)=1orW(x)=-1".
_CONNECTIVES = re.compile(r"\s*(?:\\text\{\s*(?:and|or)\s*\}|\\(?:quad|qquad)\s*(?:and|or)"
                          r"|(?<=[\s$}\d)\]])(?:and|or)(?=[\s$\\\d(\[-]|[A-Z]|[a-z]\())\s*")
# Percent written as a word after a value: "28 percent", "28 pct", "28\text{ percentage}".
_PERCENT_TEXT = re.compile(r"\\text(?:normal|up|rm)?\s*\{\s*(percent(?:age)?s?|pct)\.?\s*\}")
_PERCENT_WORD = re.compile(r"(?<=[\d}.])\s*(?:percent(?:age)?s?|pct)\.?(?![A-Za-z])", re.I)
# Units dropped after a value ("5 cm", "12\text{ inches}", "30 degrees").
UNIT_WORDS = frozenset("""
mm cm dm m km in inch inches ft foot feet yd yard yards mi mile miles meter meters metre metres
centimeter centimeters kilometer kilometers millimeter millimeters
g kg mg gram grams kilogram kilograms lb lbs pound pounds oz ounce ounces ton tons
s sec secs second seconds min mins minute minutes h hr hrs hour hours day days week weeks
month months year years ml l liter liters litre litres gallon gallons
degree degrees deg rad radian radians unit units sq square cubic
dollar dollars cent cents usd euro euros percent
mph kmh km/h m/s cm^2 cm^3 m^2 m^3 ft^2 in^2 units^2
""".split())
_PLAIN_UNITS = re.compile(r"(?<=[\d}.)])\s*(?:(?:square|sq\.?|cubic)\s+)?"
                          r"(?:" + "|".join(sorted((re.escape(u) for u in UNIT_WORDS if len(u) > 1),
                                                   key=len, reverse=True))
                          + r")(?:\^\{?[23]\}?)?\s*$", re.I)
_UNIT_POWER = re.compile(r"\\text\s*\{([^{}]*)\}\s*\^\s*\{?\s*[23]\s*\}?")
_OPEN_BOX = re.compile(r"^\\(?:boxed|fbox)\s*\{")  # a box that never closes (a typo in a gold)
_TRAILING = re.compile(r"(?:[\s.,;:]|\\\.)+$")  # not "!": 5! is a factorial
_WORD = re.compile(r"^[A-Za-z][A-Za-z '\-]*$")
_LETTER_CHOICE = re.compile(r"^\(([A-Za-z])\)$")


def _unwrap(text: str, pattern: re.Pattern, keep=None) -> str:
    """Replace ``\\cmd{X}`` by ``keep(X, before, after)`` (default ``X``),
    innermost-last; bounded so that a hostile string stays linear-ish."""
    out, start = [], 0
    for _ in range(200):
        m = pattern.search(text, start)
        if not m:
            break
        end = balanced_braces(text, m.end() - 1)
        if end is None:
            break
        inner = text[m.end():end - 1]
        out.append(text[start:m.start()])
        out.append(inner if keep is None else keep(inner, "".join(out), text[end:]))
        start = end
    out.append(text[start:])
    return "".join(out)


def _is_unit(words: str) -> bool:
    parts = words.replace("\\", " ").replace("~", " ").split()
    return bool(parts) and all(p.strip(".").lower() in UNIT_WORDS or p.startswith("^")
                               for p in parts)


def _text_block(inner: str, before: str, after: str) -> str:
    """``\\text{...}``: a unit after a value is dropped; a connective becomes a
    comma; anything else (a word answer, "(A)") keeps its content."""
    stripped = inner.strip()
    if before.strip() and _is_unit(stripped):
        return ""
    if stripped.lower() in ("and", "or", ",", "and/or"):
        return ","
    return stripped if not before.strip() and not after.strip() else inner


def _squash_spaces(text: str) -> str:
    """Drop spaces, except one that separates a command from a following letter
    (``\\sin x`` must not become ``\\sinx``) or two words of a text answer."""
    def repl(m: re.Match) -> str:
        prev, nxt = m.string[m.start() - 1] if m.start() else "", m.string[m.end():m.end() + 1]
        if prev.isalpha() and nxt.isalpha():
            i = m.start() - 1
            while i >= 0 and m.string[i].isalpha():
                i -= 1
            if i >= 0 and m.string[i] == "\\" or _WORD.match(m.string):
                return " "
        return ""
    return re.sub(r"\s+", repl, text.strip())


def normalize(text: str) -> str:
    """One spelling for an answer string (see the module docstring)."""
    s = _UNICODE_RE.sub(lambda m: _UNICODE[m.group()], str(text))
    s = _DOUBLED.sub(r"\\", s)
    s = s.replace("\\$", "").replace("$", "").replace("\\(", "").replace("\\)", "")
    s = s.strip()
    if s.startswith("\\[") and s.endswith("\\]"):
        s = s[2:-2]
    s = _LEFT_RIGHT.sub("", s)
    s = _SPACES.sub(" ", s)
    s = _unwrap(s, _STYLE)
    m = _OPEN_BOX.match(s)
    if m and balanced_braces(s, m.end() - 1) is None:
        s = s[m.end():]
    s = _PERCENT_WORD.sub("%", _PERCENT_TEXT.sub(r" \1", s))
    s = _CONNECTIVES.sub(",", s)
    s = _UNIT_POWER.sub(r"\\text{\1}", s)  # "\text{ cm}^2": the power goes with the unit
    s = _unwrap(s, _TEXT, _text_block)
    s = _FRAC_CMD.sub(r"\\frac", s)
    s = _FRAC_TOKENS.sub(r"\\frac{\1}{\2}", s)
    s = _FRAC_FIRST.sub(r"\\frac{\1}{", s)
    s = re.sub(r"\\frac\s*(\{[^{}]*\})\s*([0-9A-Za-z])", r"\\frac\1{\2}", s)
    s = _SQRT_TOKEN.sub(r"\\sqrt{\1}", s)
    s = _DEGREES.sub("", s)
    s = s.replace("\\%", "%")
    s = _INFTY.sub(r"\\infty", s)
    for pattern, repl in _RELATIONS:
        s = pattern.sub(repl, s)
    s = s.replace("{,}", "")
    # \log_2 8, x^2 y: a one-token script ends at the space that squashing removes.
    s = re.sub(r"([_^])\s*([0-9A-Za-z])\s+(?=[0-9A-Za-z\\])", r"\1{\2}", s)
    s = _squash_spaces(s)
    s = _PLAIN_UNITS.sub("", s)
    s = _TRAILING.sub("", s)
    s = _MEMBER_PREFIX.sub("", s)
    s = s.replace("\\dots", "\\ldots").replace("\\cdots", "\\ldots")
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    s = re.sub(r"^\+(?=[\d.\\])", "", s)
    s = re.sub(r"(?<![\d.])\.(?=\d)", "0.", s)  # ".5" -> "0.5"
    while len(s) > 1 and s[0] == "{" and s[-1] == "}" and balanced_braces(s, 0) == len(s):
        s = s[1:-1]  # "{42}": a group around the whole answer
    m = _LETTER_CHOICE.match(s)
    if m:  # "(A)" -> "A": a choice letter
        s = m.group(1)
    if _WORD.match(s) and len(s) > 1 and " " in s or (s.isalpha() and len(s) > 3):
        s = s.lower()  # a word answer ("Monday", "no solution"): case carries nothing
    return s


# The unit a single value ends with, by base unit: "5 cm" and "5 centimeters" agree,
# "5 cm" and "5 m" do not. Powers are not compared (an area given in "cm" is a slip,
# not a different answer), except that a volume unit equals a cube (mL = cm^3,
# L = dm^3), and no unit is converted (100 cm is not 1 m here).
_UNIT_BASES = {
    "mm": ("mm", "millimeter", "millimeters"), "m": ("m", "meter", "meters", "metre", "metres"),
    "km": ("km", "kilometer", "kilometers"), "in": ("in", "inch", "inches"),
    "ft": ("ft", "foot", "feet"), "yd": ("yd", "yard", "yards"), "mi": ("mi", "mile", "miles"),
    "g": ("g", "gram", "grams"), "kg": ("kg", "kilogram", "kilograms"), "mg": ("mg",),
    "lb": ("lb", "lbs", "pound", "pounds"), "oz": ("oz", "ounce", "ounces"),
    "ton": ("ton", "tons"), "s": ("s", "sec", "secs", "second", "seconds"),
    "min": ("min", "mins", "minute", "minutes"), "h": ("h", "hr", "hrs", "hour", "hours"),
    "day": ("day", "days"), "week": ("week", "weeks"), "month": ("month", "months"),
    "year": ("year", "years"), "gallon": ("gallon", "gallons"),
    "deg": ("degree", "degrees", "deg", "\\circ"),
    "rad": ("rad", "radian", "radians"), "usd": ("dollar", "dollars", "usd"),
    "cent": ("cent", "cents"), "euro": ("euro", "euros"), "mph": ("mph",),
    "km/h": ("kmh", "km/h"), "m/s": ("m/s",),
    # A volume counts as the cube it equals: compared by that length.
    "cm": ("cm", "centimeter", "centimeters", "ml", "millilitre", "milliliter", "milliliters",
           "millilitres", "cc"),
    "dm": ("dm", "l", "liter", "liters", "litre", "litres"),
}
_UNIT_BASE = {word: base for base, words in _UNIT_BASES.items() for word in words}
_UNIT_TAIL = re.compile(
    r"(?<=[\d}.)])\s*(?:\\text(?:normal|up|rm)?\s*\{\s*([^{}]*?)\s*\}|\\mathrm\s*\{\s*([^{}]*?)\s*\}"
    r"|((?:(?:square|sq\.?|cubic)\s+)?[A-Za-z][A-Za-z/]*))"
    r"\s*(?:\^\s*\{?\s*[23]\s*\}?)?\s*\.?\s*$")
_DEGREE_TAIL = re.compile(r"(?<=[\d}.)])\s*(?:\^\s*\{?\s*\\circ\s*\}?|\u00b0|\\degree)\s*\.?\s*$")
# What may stand before a unit: one number (digits, a fraction, a root, pi, a power of
# ten), no variable. "3m + 2s" is algebra, not 3 metres plus 2 seconds.
_COMMAND = re.compile(r"\\(?:d?frac|sqrt|pi|cdot|times|left|right)(?![A-Za-z])")


def _one_value(text: str) -> bool:
    rest = _COMMAND.sub("", text)
    return (any(c.isdigit() for c in rest) and not any(c.isalpha() for c in rest)
            and "=" not in rest and "," not in rest.strip(",") and ":" not in rest)


def unit_of(text: str) -> str | None:
    """The base unit (``_UNIT_BASES``) a one-value answer ends with; None when it has
    none, a generic one ("units", "square units"), words that are not a unit, or when
    what precedes the unit is not a single number (``_one_value``)."""
    s = str(text).replace("$", "").replace("\\,", " ").replace("~", " ").strip()
    m = _DEGREE_TAIL.search(s)
    if m:
        return "deg" if _one_value(s[:m.start()]) else None
    m = _UNIT_TAIL.search(s)
    if not m or not _one_value(s[:m.start()]):
        return None
    words = [w.strip(".").lower() for w in (m.group(1) or m.group(2) or m.group(3)).split()]
    words = [w for w in words if w not in ("square", "sq", "cubic")]
    return _UNIT_BASE.get(words[0]) if len(words) == 1 else None


# Decimal commas (docs/math.md): "1,22" and "1.22". One comma between digits, no
# space, and not a thousands separator (a first group of 1-3 digits, not 0, then
# exactly three digits: "1,000" is always 1000).
DECIMAL_COMMA_POLICIES = ("auto", "on", "off")
_COMMA_NUMBER = re.compile(r"([+-]?\d+),(\d+)")
_COMMA_THOUSANDS = re.compile(r"[+-]?[1-9]\d{0,2},\d{3}")
_POINT_NUMBER = re.compile(r"[+-]?\d*\.\d+")


def _comma_decimal(text: str) -> str | None:
    """``text`` with its decimal comma as a point, or None if it is not one number
    written with a decimal comma."""
    s = text.strip().strip("$").strip()
    m = _COMMA_NUMBER.fullmatch(s)
    if not m or _COMMA_THOUSANDS.fullmatch(s):
        return None
    return f"{m.group(1)}.{m.group(2)}"


def decimal_commas(gold: str, cand: str, policy: str = "auto") -> tuple[str, str]:
    """Gold and candidate with decimal commas read as points, by ``policy``:

    * ``off``: never (``1,22`` is the two answers 1 and 22);
    * ``on``: always (``1,22`` is 1.22 wherever it stands alone);
    * ``auto`` (default): when the other side is one number written with a decimal
      point (``1,22`` vs ``1.22``, ``1000,99`` vs ``1,000.99``). Against anything
      else (``1, 22``, ``\\{1,22\\}``, ``61/50``) the comma still separates answers.
    """
    if policy not in DECIMAL_COMMA_POLICIES:
        raise ValueError(f"decimal_comma must be one of {', '.join(DECIMAL_COMMA_POLICIES)}")
    if policy == "off":
        return gold, cand
    g, c = _comma_decimal(gold), _comma_decimal(cand)
    if policy == "on":
        return g or gold, c or cand
    if g is not None and c is None and _POINT_NUMBER.fullmatch(normalize(cand)):
        return g, cand
    if c is not None and g is None and _POINT_NUMBER.fullmatch(normalize(gold)):
        return gold, c
    return gold, cand
