"""What `--model` may name, resolved to the one model file to load.

Three forms are accepted everywhere a model is read:

- a model file: `NAME.safetensors`, `NAME.json` or the stem `NAME` (exported, imported or a checkpoint);
- a training checkpoint: the same format, e.g. `runs/x/snapshot-000500` or `runs/x/checkpoint-latest`;
- a run folder: `runs/x`, meaning its latest loadable checkpoint (as `train --resume` reads it).
"""

from __future__ import annotations

from pathlib import Path

from .errors import UserError


class ModelNotFound(UserError):
    """`--model` names nothing that holds a model."""


def resolve_model(path: str | Path) -> Path:
    """The model file (as its stem) that `path` names; a run folder gives its latest loadable checkpoint.

    Raises ModelNotFound (a UserError) when nothing there is a model. Whether the file then loads is the
    loader's business (`modelfile.ModelFileError`).
    """
    from .modelfile import model_paths

    p = Path(path)
    if p.is_dir():
        from .train.loop import find_checkpoint

        return find_checkpoint(p)
    weights, meta = model_paths(p)
    if meta.exists() or weights.exists():
        return weights.with_suffix("")
    raise ModelNotFound(f"{path}: model not found (no such model file, checkpoint or run folder; a model is "
                        f"NAME.safetensors + NAME.json)")
