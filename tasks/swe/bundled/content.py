"""The bundled repositories, written for this project: each commit's files.

Two small Python packages with stdlib-only ``unittest`` suites. Commit 0 has
three real bugs; each later commit fixes one and adds the tests that show it.
An instance's base is the commit before its fix, so the mirror holds "future"
commits (and a tag) that the sandbox must keep out of the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TEXTKIT_CORE = '''"""Small text helpers."""

import re

MINOR = frozenset({"a", "an", "and", "the", "of", "in", "on", "to"})


def slugify(text):
    """Lower-case ASCII words of ``text`` joined by single hyphens."""
    words = re.split(r"[^a-z0-9]", text.lower())
    return "-".join(words)


def wrap(text, width):
    """Greedy word wrap into lines of at most ``width`` characters."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + len(word) + 1 > width + 1:
            lines.append(line)
            line = word
        else:
            line = line + " " + word if line else word
    if line:
        lines.append(line)
    return lines


def title_case(text):
    """Capitalise each word but minor ones; the first and last word always."""
    words = text.lower().split()
    out = []
    for i, word in enumerate(words):
        if word in MINOR and i > 0:
            out.append(word)
        else:
            out.append(word.capitalize())
    return " ".join(out)
'''

NUMKIT_FILES = {
    "numkit/intervals.py": '''"""Closed integer intervals."""


def merge(intervals):
    """Merge overlapping or touching intervals; the result is sorted."""
    out = []
    for start, end in intervals:
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out
''',
    "numkit/stats.py": '''"""Descriptive statistics."""


def median(values):
    """The middle value; the mean of the two middle values for an even count."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("median of no values")
    mid = len(ordered) // 2
    return ordered[mid]
''',
    "numkit/roman.py": '''"""Roman numerals."""

NUMERALS = [(1000, "M"), (500, "D"), (100, "C"), (50, "L"), (10, "X"), (5, "V"), (1, "I")]


def to_roman(n):
    """``n`` (1..3999) in Roman numerals, with subtractive forms (IV, XC, CM)."""
    if not 0 < n < 4000:
        raise ValueError("out of range: %r" % (n,))
    out = []
    for value, letters in NUMERALS:
        count, n = divmod(n, value)
        out.append(letters * count)
    return "".join(out)
''',
}


def _test(module: str, cls: str, imports: str, body: str) -> str:
    return f'import unittest\n\n{imports}\n\n\nclass {cls}(unittest.TestCase):\n{body}'


@dataclass
class Fix:
    """One later commit: the fix (source files) and the tests (test files) it adds."""

    instance: str
    message: str
    problem: str
    source: dict[str, str]  # path -> (old, new) replacement in that file
    tests: dict[str, tuple[str, str]]  # path -> (old, new) replacement in that file
    fail_to_pass: list[str]
    pass_to_pass: list[str]


@dataclass
class RepoSpec:
    repo: str  # owner/name
    files: dict[str, str]
    fixes: list[Fix] = field(default_factory=list)
    env_spec: dict | None = None  # the instances' env_spec; None: stdlib unittest, no install


T_SLUG = _test("slugify", "SlugifyTests", "from textkit import slugify", '''
    def test_basic(self):
        self.assertEqual(slugify("Hello World"), "hello-world")

    def test_digits(self):
        self.assertEqual(slugify("Area 51"), "area-51")
''')
T_WRAP = _test("wrap", "WrapTests", "from textkit import wrap", '''
    def test_one_per_line(self):
        self.assertEqual(wrap("a b c", 1), ["a", "b", "c"])

    def test_fits(self):
        self.assertEqual(wrap("aa bb", 5), ["aa bb"])
''')
T_TITLE = _test("title", "TitleTests", "from textkit import title_case", '''
    def test_minor_words(self):
        self.assertEqual(title_case("the lord of the rings"), "The Lord of the Rings")
''')
T_MERGE = _test("intervals", "MergeTests", "from numkit.intervals import merge", '''
    def test_sorted_input(self):
        self.assertEqual(merge([(1, 3), (2, 5), (7, 8)]), [(1, 5), (7, 8)])

    def test_empty(self):
        self.assertEqual(merge([]), [])
''')
T_MEDIAN = _test("stats", "MedianTests", "from numkit.stats import median", '''
    def test_odd(self):
        self.assertEqual(median([3, 1, 2]), 2)

    def test_empty(self):
        with self.assertRaises(ValueError):
            median([])
''')
T_ROMAN = _test("roman", "RomanTests", "from numkit.roman import to_roman", '''
    def test_additive(self):
        self.assertEqual(to_roman(2023), "MMXXIII")

    def test_range(self):
        with self.assertRaises(ValueError):
            to_roman(0)
''')

TEXTKIT = RepoSpec("evalsfix/textkit", {
    "README.md": "# textkit\n\nSmall text helpers. Tests: `python3 -m unittest -v`.\n",
    "textkit/__init__.py": "from .core import slugify, title_case, wrap  # noqa: F401\n",
    "textkit/core.py": TEXTKIT_CORE,
    "tests/__init__.py": "",
    "tests/test_slugify.py": T_SLUG,
    "tests/test_wrap.py": T_WRAP,
    "tests/test_title.py": T_TITLE,
}, [
    Fix("evalsfix__textkit-1", "slugify: collapse runs of separators",
        "slugify() leaves empty words around punctuation and repeated spaces: "
        "slugify('  Hello,  World! ') gives '--hello---world--' instead of 'hello-world'. "
        "Runs of separators must give one hyphen, and none at either end.",
        {"textkit/core.py": ('words = re.split(r"[^a-z0-9]", text.lower())',
                             'words = [w for w in re.split(r"[^a-z0-9]+", text.lower()) if w]')},
        {"tests/test_slugify.py": ("", '''
    def test_collapses_separators(self):
        self.assertEqual(slugify("  Hello,  World! "), "hello-world")
''')},
        ["tests.test_slugify.SlugifyTests.test_collapses_separators"],
        ["tests.test_slugify.SlugifyTests.test_basic", "tests.test_slugify.SlugifyTests.test_digits"]),
    Fix("evalsfix__textkit-2", "wrap: never exceed the width",
        "wrap(text, width) sometimes returns a line one character longer than width: "
        "wrap('aaa bb cc', 5) gives ['aaa bb', 'cc'] instead of ['aaa', 'bb cc'].",
        {"textkit/core.py": ("len(line) + len(word) + 1 > width + 1", "len(line) + len(word) + 1 > width")},
        {"tests/test_wrap.py": ("", '''
    def test_never_wider(self):
        self.assertEqual(wrap("aaa bb cc", 5), ["aaa", "bb cc"])
''')},
        ["tests.test_wrap.WrapTests.test_never_wider"],
        ["tests.test_wrap.WrapTests.test_one_per_line", "tests.test_wrap.WrapTests.test_fits"]),
    Fix("evalsfix__textkit-3", "title_case: capitalise a minor last word",
        "title_case() should always capitalise the last word, as its docstring says, but "
        "title_case('something to think of') gives 'Something to Think of'.",
        {"textkit/core.py": ("if word in MINOR and i > 0:", "if word in MINOR and 0 < i < len(words) - 1:")},
        {"tests/test_title.py": ("", '''
    def test_last_word(self):
        self.assertEqual(title_case("something to think of"), "Something to Think Of")
''')},
        ["tests.test_title.TitleTests.test_last_word"],
        ["tests.test_title.TitleTests.test_minor_words"]),
])

NUMKIT = RepoSpec("evalsfix/numkit", {
    "README.md": "# numkit\n\nSmall numeric helpers. Tests: `python3 -m unittest -v`.\n",
    "numkit/__init__.py": "",
    **NUMKIT_FILES,
    "tests/__init__.py": "",
    "tests/test_intervals.py": T_MERGE,
    "tests/test_stats.py": T_MEDIAN,
    "tests/test_roman.py": T_ROMAN,
}, [
    Fix("evalsfix__numkit-1", "merge: sort the intervals first",
        "intervals.merge() only merges neighbours in the order given: merge([(7, 8), (1, 3), "
        "(2, 5)]) gives [(7, 8), (1, 5)] instead of [(1, 5), (7, 8)].",
        {"numkit/intervals.py": ("for start, end in intervals:", "for start, end in sorted(intervals):")},
        {"tests/test_intervals.py": ("", '''
    def test_unsorted_input(self):
        self.assertEqual(merge([(7, 8), (1, 3), (2, 5)]), [(1, 5), (7, 8)])
''')},
        ["tests.test_intervals.MergeTests.test_unsorted_input"],
        ["tests.test_intervals.MergeTests.test_sorted_input", "tests.test_intervals.MergeTests.test_empty"]),
    Fix("evalsfix__numkit-2", "median: mean of the middle pair",
        "stats.median() of an even number of values returns the upper middle value: "
        "median([4, 1, 3, 2]) gives 3 instead of 2.5.",
        {"numkit/stats.py": ("    return ordered[mid]\n",
                             "    if len(ordered) % 2 == 0:\n"
                             "        return (ordered[mid - 1] + ordered[mid]) / 2\n"
                             "    return ordered[mid]\n")},
        {"tests/test_stats.py": ("", '''
    def test_even(self):
        self.assertEqual(median([4, 1, 3, 2]), 2.5)
''')},
        ["tests.test_stats.MedianTests.test_even"],
        ["tests.test_stats.MedianTests.test_odd", "tests.test_stats.MedianTests.test_empty"]),
    Fix("evalsfix__numkit-3", "to_roman: subtractive forms",
        "roman.to_roman() writes 4 as 'IIII' and 1994 as 'MDCCCCLXXXXIIII'; it must use the "
        "subtractive forms: 'IV' and 'MCMXCIV'.",
        {"numkit/roman.py": ('NUMERALS = [(1000, "M"), (500, "D"), (100, "C"), (50, "L"), (10, "X"), '
                             '(5, "V"), (1, "I")]',
                             'NUMERALS = [(1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"),\n'
                             '            (90, "XC"), (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), '
                             '(5, "V"),\n            (4, "IV"), (1, "I")]')},
        {"tests/test_roman.py": ("", '''
    def test_subtractive(self):
        self.assertEqual(to_roman(1994), "MCMXCIV")
        self.assertEqual(to_roman(4), "IV")
''')},
        ["tests.test_roman.RomanTests.test_subtractive"],
        ["tests.test_roman.RomanTests.test_additive", "tests.test_roman.RomanTests.test_range"]),
])

# What broke on real repositories, in small: a package built from pyproject.toml with
# setuptools_scm and a setup.py, as pytest 5.4 is (Debian bullseye's pip 20.3 runs
# `setup.py develop` in an isolated build environment, where today's setuptools
# shells out to a pip that is not there), pytest, and a test that
# needs a connection to an unroutable address to hang until its timeout (as
# requests' connect-timeout tests do), which only the sealed network gives.
NETKIT_PYPROJECT = '''[build-system]
requires = ["setuptools>=64", "setuptools_scm>=8"]
build-backend = "setuptools.build_meta"

[project]
name = "netkit"
dynamic = ["version"]
requires-python = ">=3.8"

[tool.setuptools]
packages = ["netkit"]

[tool.setuptools_scm]
'''

NETKIT = RepoSpec("evalsfix/netkit", {
    "README.md": "# netkit\n\nSmall network helpers. Tests: `pytest -rA`.\n",
    "pyproject.toml": NETKIT_PYPROJECT,
    "setup.py": "from setuptools import setup\n\nsetup()\n",  # as pytest 5.4 has both
    "netkit/__init__.py": '''"""Small network helpers."""

from importlib.metadata import version as _version

from .probe import probe  # noqa: F401
from .urls import join  # noqa: F401

__version__ = _version("netkit")  # from the git tag, by setuptools_scm
''',
    "netkit/probe.py": '''"""TCP reachability."""

import socket


def probe(host, port, timeout):
    """'open', 'refused' or 'timeout' for a TCP connection to ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return "open"
    except socket.timeout:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
''',
    "netkit/urls.py": '''"""URL paths."""


def join(base, *parts):
    """``base`` and ``parts`` joined by single slashes."""
    out = base
    for part in parts:
        out = out + "/" + part
    return out
''',
    "tests/test_probe.py": '''from netkit import probe


def test_unroutable_address_times_out():
    # Nothing answers for 10.255.255.1: the connection must wait out its timeout.
    assert probe("10.255.255.1", 81, 0.5) == "timeout"
''',
    "tests/test_urls.py": '''import netkit
from netkit import join


def test_version_from_the_git_tag():
    assert netkit.__version__.startswith("0.1")


def test_plain():
    assert join("http://h", "a", "b") == "http://h/a/b"
''',
}, [
    Fix("evalsfix__netkit-1", "join: no doubled slashes",
        "urls.join() doubles slashes that the parts already carry: join('http://h/', '/a') "
        "gives 'http://h///a' instead of 'http://h/a'.",
        {"netkit/urls.py": ('out = out + "/" + part', 'out = out.rstrip("/") + "/" + part.lstrip("/")')},
        {"tests/test_urls.py": ("", '''

def test_no_doubled_slashes():
    assert join("http://h/", "/a") == "http://h/a"
'''), "tests/test_probe.py": ("", '''

def test_closed_local_port_is_refused():
    assert probe("127.0.0.1", 9, 0.5) == "refused"
''')},
        ["tests/test_urls.py::test_no_doubled_slashes"],
        ["tests/test_urls.py::test_version_from_the_git_tag", "tests/test_urls.py::test_plain",
         "tests/test_probe.py::test_unroutable_address_times_out"]),
], env_spec={"python": "3.9", "packages": ["pytest==8.3.3"],
             "install": "python -m pip install -e .", "test_cmd": "pytest -rA",
             "log_parser": "pytest", "test_directives": "pytest", "network": "sealed",
             "timeout": 300})

REPOS = (TEXTKIT, NUMKIT, NETKIT)
