"""The one probe of the Hugging Face Hub, the offline switch around loads, and telling a missing
local path from a Hub name.

Loading code tries the local cache first; a Hub name that is not cached fails fast (a TCP probe
of the endpoint, no 25 s of retries) with a message naming the fix. A reference that is written
as a path (``/x``, ``./x``, ``~/x``, ``C:\\x``) and does not exist is reported as a missing path.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

from harness.common.errors import HarnessError

_PROXIES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def offline_env() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE / HF_DATASETS_OFFLINE) is set."""
    return any(os.environ.get(k, "0") not in ("0", "", "false", "False")
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"))


def hub_reachable(timeout: float = 3.0) -> bool:
    """A cheap TCP probe of the Hub endpoint: False when offline mode is set or nothing answers;
    True when a proxy is configured (the proxy decides)."""
    if offline_env():
        return False
    if any(os.environ.get(k) for k in _PROXIES):
        return True
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def looks_like_path(ref: str) -> bool:
    """``ref`` is written as a file-system path rather than a Hub name (``org/name``)."""
    ref = str(ref)
    return (ref.startswith(("/", "./", "../", "~", "\\")) or bool(re.match(r"^[A-Za-z]:[\\/]", ref))
            or ref in (".", "..") or os.sep + os.sep in ref or ref.count("/") > 1)


def check_local(ref: str, what: str) -> Path | None:
    """The existing local path ``ref`` names; None for a Hub name; a HarnessError for a missing path."""
    p = Path(str(ref)).expanduser()
    if p.exists():
        return p
    if looks_like_path(ref):
        raise HarnessError(f"{what} '{ref}' does not exist", hint="check the path (relative paths are taken from "
                                                                  "the current folder)")
    return None


class offline_mode:
    """Within the block ``datasets``/``huggingface_hub`` use only the local cache (restored after)."""

    def __init__(self, on: bool):
        self.on = on
        self.saved: list = []

    def __enter__(self):
        if self.on:
            import datasets
            import huggingface_hub.constants as hub_constants

            for mod in (datasets.config, hub_constants):
                self.saved.append((mod, mod.HF_HUB_OFFLINE))
                mod.HF_HUB_OFFLINE = True
        return self

    def __exit__(self, *exc):
        for mod, value in self.saved:
            mod.HF_HUB_OFFLINE = value
        return False
