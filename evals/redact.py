"""Keep secrets out of run.json, records, logs and the cache."""

from __future__ import annotations

import os
import re

_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.I)
_SECRET_SHAPE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,}|hf_[A-Za-z0-9]{16,}|gsk_[A-Za-z0-9]{16,}"
                           r"|AIza[A-Za-z0-9_\-]{20,}|fw_[A-Za-z0-9]{16,}|Bearer\s+\S+)")
# a password in a URL (ssh://bob:pw@host, tcp://u:pw@host): the user stays, the password goes
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.\-]*://[^/\s:@]*):[^@\s/]+@", re.I)
# `name=value` where the name looks secret (a -M api_key=... on a command line)
_SECRET_PAIR = re.compile(r"^([^=]*(?:KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL)[^=]*)=(.+)$", re.I)
_known: set[str] = set()  # secrets seen in options: masked wherever they turn up later


def remember(options: dict[str, str]) -> None:
    """Mask the values of secret-named options from now on (e.g. a key given by -M)."""
    _known.update(str(v) for k, v in options.items() if _SECRET_NAME.search(k) and len(str(v)) >= 4)


def _secrets() -> set[str]:
    env = {v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 8}
    return env | _known


def scrub(text: str) -> str:
    """Replace known secret values, secret-named pairs and key-shaped strings with ***."""
    for value in _secrets():
        if value in text:
            text = text.replace(value, "***")
    text = _SECRET_PAIR.sub(lambda m: f"{m.group(1)}=***", text)
    text = _URL_PASSWORD.sub(r"\1:***@", text)
    return _SECRET_SHAPE.sub("***", text)


def scrub_options(options: dict[str, str]) -> dict[str, str]:
    return {k: ("***" if _SECRET_NAME.search(k) else scrub(str(v))) for k, v in options.items()}
