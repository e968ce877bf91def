"""How the CLI shows paths: relative to the current folder, as the user typed them.

The library resolves every path in a config to an absolute one (so that a run
folder's config.yaml works from anywhere); what the CLI prints shows paths under
the current folder, or its parent, relative to it.
"""
from __future__ import annotations

import os
from pathlib import Path


def relative(text) -> str:
    """``text`` (a message or a path) with absolute paths under the current folder or
    its parent rewritten relative to the current folder."""
    text = str(text)
    cwd = Path.cwd()
    for folder, shown in ((cwd, ""), (cwd.parent, ".." + os.sep)):
        if folder != folder.parent:  # never the root: it prefixes everything
            text = text.replace(str(folder) + os.sep, shown)
    return text
