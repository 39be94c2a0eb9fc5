"""The one place tunelab writes files: atomic writes, strict JSON, secret scrubbing.

A sweep is only as trustworthy as its files: a job killed mid-write must leave either the old
file or the new one, never half of one. So every write (results.json, reports, plots, cached
features, checkpoints) goes to a temp file in the same directory, is flushed and fsynced, and
then ``os.replace``d over the target (atomic on POSIX).

JSON is strict (no NaN/Infinity tokens, which many parsers reject): a non-finite float is
written as ``null``; numpy/torch scalars become Python numbers.
"""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from tunelab.errors import TunelabError

# A key is a credential when its whole name, or its last words, say so. Substrings are not
# enough: "token" inside ``tokens_column``, ``tokenizer`` or ``label_all_tokens`` names text, not
# a secret, and a scrubbed config can no longer rerun its study. Tokenizer settings such as
# ``pad_token`` end in "_token" too, so token suffixes are listed one by one.
SECRET_KEYS = frozenset({"token", "password", "passwd", "secret", "api_key", "apikey", "credentials"})
SECRET_SUFFIXES = ("_api_key", "_apikey", "_password", "_passwd", "_secret", "_secret_key", "_private_key",
                   "_access_key", "access_token", "auth_token", "api_token", "hf_token", "hub_token",
                   "refresh_token", "bearer_token", "wandb_token")


def jsonable(x: Any) -> Any:
    """Plain, strict-JSON data: non-finite floats -> None, scalars -> Python, paths -> str."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if hasattr(x, "item") and callable(x.item) and getattr(x, "ndim", 0) == 0:  # numpy / torch scalars
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Path):
        return str(x)
    return x


def is_secret_key(key: Any) -> bool:
    """True for credential names: ``api_key``, ``HF_TOKEN``, ``wandb.password``, ``client_secret``;
    false for ``tokens_column``, ``tokenizer``, ``label_all_tokens``, ``pad_token``."""
    k = str(key).lower().replace("-", "_")
    return k in SECRET_KEYS or k.endswith(SECRET_SUFFIXES)


def scrub_secrets(obj: Any) -> Any:
    """Replace values of keys that are credentials (:func:`is_secret_key`): configs are shared,
    keys are not. Empty values stay as they are (nothing to hide, and they show the key is unset)."""
    if isinstance(obj, dict):
        return {k: ("***" if is_secret_key(k) and v else scrub_secrets(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [scrub_secrets(v) for v in obj]
    return obj


def _umask() -> int:
    """The process umask (reading it means setting it: set it back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Any], None], *, binary: bool = False, error=TunelabError,
                 what: str = "", fix: str = "Free disk space or choose another output dir.") -> None:
    """Write ``path`` through ``write(file)`` into a temp file beside it, fsync, then rename over it.

    A kill or a full disk leaves either the old complete file or the new one, never a truncated
    one, and no temp file behind. On OSError raises ``error`` naming ``what`` and ``fix``.

    ``mkstemp`` creates its file with mode 0600 whatever the umask; the final file gets the mode
    an ordinary ``open`` would give (0666 & ~umask: 0644 under umask 022), so colleagues on a
    shared cluster can read results, reports and checkpoints as their umask intends.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise error(f"cannot write {what}{path}: {e.strerror}. Check the output dir is writable "
                    f"(hydra.run.dir / hydra.sweep.dir) and the disk has space.") from None
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:  # a kill mid-write too: never leave the temp file
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            hint = " (disk full)" if e.errno == errno.ENOSPC else ""
            raise error(f"cannot write {what}{path}: {e.strerror or e}{hint}; no partial file was left "
                        f"behind. {fix}") from None
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text))


def write_json(path: Path, obj: Any) -> Path:
    """``obj`` as strict, indented JSON, atomically."""
    atomic_write_text(Path(path), json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n")
    return Path(path)
