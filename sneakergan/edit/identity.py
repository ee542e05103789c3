"""The one rule that turns a model file's path into the model id that edit states carry.

Every place that makes or checks a state (the website, `sneakergan edit`, `project`, `directions`) must agree, or a
design made with the CLI cannot be opened on the site. Ids must satisfy the edit state's id syntax (letters,
digits, '_', '-', '.', at most 64 characters), so the file name is made safe the same way everywhere:
`my model.safetensors` -> `my-model`.
"""

from __future__ import annotations

import re
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
MAX_ID = 64


def model_id(path: str | Path) -> str:
    """The model id of a model file (the .safetensors, the .json or the stem): its safe file name without suffix."""
    name = Path(path).name
    for suffix in (".safetensors", ".json"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    # One '-' per unsafe character (not per run): the ids the site has always given stay the same.
    safe = _UNSAFE.sub("-", name).lstrip("-_.") or "model"
    return safe[:MAX_ID]
