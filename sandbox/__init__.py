"""Docker sandboxes for running untrusted code: layered images and limited containers.

Importing this package is cheap; the ``docker`` SDK is imported on first use
(:func:`sandbox.engine.client`).
"""

from .engine import SandboxError, available
from .limits import NETWORKS, Limits

__all__ = ["SandboxError", "available", "Limits", "NETWORKS"]
