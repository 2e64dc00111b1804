"""Installed into an env image whose spec asks for Python 3.5 or 3.6 when the image
runs a newer one (interpreter substitution), through a ``.pth`` file.

Until bpo-39450 (3.7.7, 3.8.2), ``unittest``'s verbose output printed a test's
docstring under its name only when the docstring's first line was not blank; newer
Pythons strip the docstring first. Django's verbose test log then spreads such a test
over two lines, and its id no longer matches SWE-bench's lists, which were made on the
old interpreter. This restores the old description, and nothing else, once
``unittest.case`` is first imported (no cost for processes that never import it).
"""

import sys


def _short_description(self):
    doc = self._testMethodDoc
    return doc and doc.split("\n")[0].strip() or None


class _PatchOnImport:
    def find_spec(self, name, path=None, target=None):
        if name != "unittest.case":
            return None
        sys.meta_path.remove(self)
        from importlib.util import find_spec

        spec = find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            module.TestCase.shortDescription = _short_description

        spec.loader.exec_module = exec_module
        return spec


if "unittest.case" in sys.modules:
    sys.modules["unittest.case"].TestCase.shortDescription = _short_description
else:
    sys.meta_path.insert(0, _PatchOnImport())
