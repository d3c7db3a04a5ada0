"""Installing models: pull a pinned model, import a copy, list them, choose the default.

Loading a model never downloads (:mod:`vidsearch.models.contract`); this module is the one
explicit, verified way to get one. :func:`pull` downloads the files of a registry entry
(:mod:`~vidsearch.models.registry`), each checked against its pinned SHA-256
(:mod:`~vidsearch.models.download`), converts them (:mod:`~vidsearch.models.convert`) and moves
the finished directory into ``models/<name>`` atomically. :func:`import_model` installs a model
directory or archive on an air-gapped machine.
"""
from __future__ import annotations

import os
import re
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from vidsearch.core.hashing import sha256_file
from vidsearch.errors import ModelError
from vidsearch.models.contract import META_FILE, ModelInfo, installed_models, load_model_info, valid_name
from vidsearch.models.convert import add_meta, convert_upstream, looks_upstream, read_json
from vidsearch.models.download import Progress, download
from vidsearch.models.registry import PinnedModel, RemoteFile, file_url, hub_url, registry
from vidsearch.models.towers import external_locations
from vidsearch.settings import home, models_dir, read_config, write_config


def _check_name(name: str) -> str:
    if not valid_name(name):
        raise ModelError(f"invalid model name {name!r}: use letters, digits, '.', '_' and '-'")
    return name


def _install_dir(tmp: Path, name: str, force: bool) -> Path:
    """Move a finished model directory into ``models/<name>`` (replacing it with ``force``)."""
    target = models_dir() / name
    if target.exists():
        if not force:
            raise ModelError(f"a model named {name} is already installed in {target}; add --force to replace it")
        old = target.with_name(f".{name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)
    return target


def _maybe_default(name: str, make_default: bool | None) -> bool:
    """Make ``name`` the default when asked, or when no (working) default is configured."""
    current = read_config().get("default_model")
    if make_default or (make_default is None and (not current or not (models_dir() / str(current)).is_dir())):
        write_config(default_model=name)
        return True
    return False


def _staging(prefix: str) -> Path:
    root = models_dir()
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{prefix}-", dir=root))


def _pinned_entry(name: str, trust_unpinned: bool) -> PinnedModel:
    """The registry entry ``name``; one with unpinned files only with ``trust_unpinned``."""
    entries = registry()
    entry = entries.get(name)
    if entry is None:
        raise ModelError(f"unknown model {name!r}; choose one of: {', '.join(sorted(entries))} (vidsearch model list --available)")
    unpinned = [f.path for f in entry.files if not f.sha256]
    if (unpinned or entry.external_data) and not trust_unpinned:
        what = ", ".join(unpinned) + (" and the external weight files its graphs name" if entry.external_data else "")
        raise ModelError(
            f"{name} has files without a pinned sha256 ({what}); nothing was downloaded. "
            f"Pull it with --trust-unpinned to install them anyway (their computed hashes go into model.json), "
            f"or pick a pinned model: {', '.join(n for n, e in sorted(entries.items()) if e.pinned)}"
        )
    return entry


def _installed_pull(entry: PinnedModel, name: str) -> ModelInfo:
    """The model already installed as ``name`` when it was pulled from the same revision; else an error."""
    target = models_dir() / name
    try:
        info = load_model_info(target)
    except ModelError:
        info = None
    if info is not None:
        src = read_json(target / META_FILE).get("source") or {}
        if src.get("revision") == entry.revision and src.get("repo") == entry.repo:
            return info
    raise ModelError(f"a different model named {name} is installed in {target}; add --force to replace it")


def _fetch_all(entry: PinnedModel, cache: Path, base: str, *, retries: int, timeout: float,
               progress: Progress | None) -> dict[str, dict[str, Any]]:
    """Download (or reuse) every file of ``entry`` into ``cache``; returns {path: {sha256, pinned}}."""
    fetched: dict[str, dict[str, Any]] = {}

    def fetch(rf: RemoteFile) -> None:
        got = download(
            file_url(entry, rf.path, base), cache / rf.path, rf.sha256, rf.size,
            retries=retries, timeout=timeout, progress=progress, label=rf.path,
        )
        fetched[rf.path] = {"sha256": got, "pinned": bool(rf.sha256)}

    for rf in entry.files:
        fetch(rf)
    if entry.external_data:
        listed = {f.path for f in entry.files}
        for tower in ("visual", "textual"):
            graph = cache / tower / "model.onnx"
            if graph.is_file():
                for loc in external_locations(graph):
                    path = f"{tower}/{loc}"
                    if path not in listed:
                        fetch(RemoteFile(path))
    return fetched


def _drop_download(cache: Path) -> None:
    shutil.rmtree(cache, ignore_errors=True)
    for parent in (cache.parent, cache.parent.parent):
        try:
            parent.rmdir()  # only when empty
        except OSError:
            break


def pull(
    name: str,
    *,
    trust_unpinned: bool = False,
    force: bool = False,
    make_default: bool | None = None,
    retries: int = 3,
    timeout: float = 60.0,
    keep_download: bool = False,
    progress: Progress | None = None,
) -> ModelInfo:
    """Download, verify, convert and install the registry model ``name``.

    Refuses (before downloading anything) a model with unpinned files unless ``trust_unpinned``.
    """
    entry = _pinned_entry(name, trust_unpinned)
    if (models_dir() / name).exists() and not force:
        info = _installed_pull(entry, name)
        _maybe_default(name, make_default)
        return info

    base = hub_url()
    cache = home() / "downloads" / entry.repo.replace("/", "__") / entry.revision
    fetched = _fetch_all(entry, cache, base, retries=retries, timeout=timeout, progress=progress)
    staging = _staging(name)
    try:
        source = {
            "kind": "pull",
            "hub": base,
            "repo": entry.repo,
            "revision": entry.revision,
            "files": fetched,
            "pinned": all(v["pinned"] for v in fetched.values()),
        }
        convert_upstream(cache, staging, name=name, hints=entry, source=source)
        load_model_info(staging)  # the contract check; the hashes were just computed by the conversion
        _install_dir(staging, name, force=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if not keep_download:
        _drop_download(cache)
    _maybe_default(name, make_default)
    return load_model_info(name)


def _safe_extract(archive: Path, into: Path) -> None:
    name = archive.name.lower()
    if name.endswith(".zip"):
        try:
            with zipfile.ZipFile(archive) as z:
                for member in z.namelist():
                    p = Path(member)
                    if p.is_absolute() or ".." in p.parts:
                        raise ModelError(f"{archive} holds an unsafe path {member!r}; not extracting it")
                z.extractall(into)
        except (zipfile.BadZipFile, OSError) as e:
            raise ModelError(f"cannot extract {archive}: {e}") from None
        return
    try:
        with tarfile.open(archive) as t:
            if hasattr(tarfile, "data_filter"):
                t.extractall(into, filter="data")
            else:  # pragma: no cover - Python < 3.11.4
                for m in t.getmembers():
                    p = Path(m.name)
                    if p.is_absolute() or ".." in p.parts or not (m.isfile() or m.isdir()):
                        raise ModelError(f"{archive} holds an unsafe entry {m.name!r}; not extracting it")
                t.extractall(into)
    except (tarfile.TarError, OSError) as e:
        raise ModelError(f"cannot extract {archive}: {e}") from None


def _find_model_root(root: Path) -> Path:
    found: list[Path] = []
    for d in [root, *sorted(p for p in root.rglob("*") if p.is_dir() and len(p.relative_to(root).parts) <= 3)]:
        if (d / META_FILE).is_file() or looks_upstream(d):
            if not any(parent in found for parent in d.parents):
                found.append(d)
    if not found:
        raise ModelError(
            "no model found: expected a model directory (image.onnx, text.onnx, model.json) "
            "or an Immich-style export (visual/model.onnx, textual/model.onnx)"
        )
    if len(found) > 1:
        raise ModelError(f"the archive holds several models ({', '.join(str(f.relative_to(root)) for f in found)}); import them one at a time")
    return found[0]


def import_model(
    path: str | os.PathLike,
    *,
    name: str | None = None,
    force: bool = False,
    make_default: bool | None = None,
) -> ModelInfo:
    """Install a model from a directory or archive (.tar, .tar.gz, .tgz, .zip) without network.

    A vidsearch model directory (model.json) is copied and its hashes verified; an Immich-style
    export is converted. The installed directory is named ``name`` or after the model.
    """
    src = Path(path).expanduser()
    if not src.exists():
        raise ModelError(f"{src} does not exist")
    staging = _staging("import")
    try:
        if src.is_dir():
            root = src
        else:
            _safe_extract(src, staging / "extract")
            root = _find_model_root(staging / "extract")
        if root.is_dir() and not (root / META_FILE).is_file() and not looks_upstream(root):
            root = _find_model_root(root)
        out = staging / "model"
        if (root / META_FILE).is_file():
            # verify the copy (what gets installed), once: the hashes are read after copying
            shutil.copytree(root, out)
            try:
                probe = load_model_info(out, verify=True)
            except ModelError as e:
                raise ModelError(f"{src}: {str(e).replace(str(out), str(root))}") from None
            install_name = _check_name(name or probe.name)
            source = {"kind": "import", "from": str(src)}
            old = read_json(out / META_FILE).get("source")
            if old:
                source["original"] = old
            add_meta(out, source=source)
        else:
            install_name = _check_name(name or re.sub(r"[^A-Za-z0-9._-]+", "-", root.name if root != staging / "extract" else src.name.split(".")[0]))
            files = {}
            for p in sorted(root.rglob("*")):
                if p.is_file():
                    files[str(p.relative_to(root))] = {"sha256": sha256_file(p), "pinned": False}
            convert_upstream(root, out, name=install_name, source={"kind": "import", "from": str(src), "files": files})
            load_model_info(out)  # the contract check; the conversion just computed the hashes
        _install_dir(out, install_name, force)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _maybe_default(install_name, make_default)
    return load_model_info(install_name)


def default_model() -> str | None:
    return read_config().get("default_model") or None


def set_default(name: str) -> ModelInfo:
    info = load_model_info(name)
    write_config(default_model=name)
    return info


def _dir_size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def list_models() -> list[dict[str, Any]]:
    """Installed models with their id, dim, file hashes, size and whether each is the default."""
    default = default_model()
    out = []
    for info in installed_models():
        assert info.path is not None
        meta = read_json(info.path / META_FILE)
        src = meta.get("source") or {}
        out.append(
            {
                "name": info.path.name,
                "model_id": info.model_id,
                "dim": info.dim,
                "image_size": info.image_size,
                "tokenizer": info.tokenizer if isinstance(info.tokenizer, str) else info.tokenizer.get("type"),
                "semantics": info.semantics,
                "default": info.path.name == default,
                "pinned": src.get("pinned", (src.get("original") or {}).get("pinned")),
                "source": src.get("repo") or src.get("from") or src.get("kind"),
                "size_bytes": _dir_size(info.path),
                "sha256": dict(info.files),
                "path": str(info.path),
                "description": info.description,
            }
        )
    return out


def available_models() -> list[dict[str, Any]]:
    installed = {info.path.name for info in installed_models() if info.path is not None}
    return [
        {
            "name": e.name,
            "repo": e.repo,
            "revision": e.revision,
            "pinned": e.pinned,
            "download_bytes": e.download_size,
            "arch": e.arch,
            "pretrained": e.pretrained,
            "installed": e.name in installed,
            "description": e.description,
        }
        for e in registry().values()
    ]
