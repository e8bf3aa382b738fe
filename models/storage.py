"""Reading model directories wherever they live: a local path or an object store (`gs://`).

Beam's `FileSystems` resolves the scheme, so the job on Dataflow reads the same layout from a
bucket that a local run reads from disk; TensorFlow loads the SavedModels itself.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from apache_beam.io.filesystems import FileSystems


def join(base: str | Path, *parts: str) -> str:
    """`base/part/...`, keeping a scheme's `//` (pathlib would fold `gs://b` to `gs:/b`)."""
    return FileSystems.join(str(base), *parts)


def exists(path: str) -> bool:
    return FileSystems.exists(path)


def read_bytes(path: str) -> bytes:
    with FileSystems.open(path) as handle:
        return handle.read()


def child_dirs_holding(root: str | Path, marker: str) -> list[str]:
    """The names of `root`'s sub-directories that hold a file named `marker`."""
    pattern = join(root, "*", marker)
    (found,) = FileSystems.match([pattern])
    return sorted({FileSystems.split(FileSystems.split(m.path)[0])[1] for m in found.metadata_list})


def write_bytes(path: str, data: bytes) -> None:
    """Writes `path` whole: a reader never sees it half-written (a local file is written beside
    and renamed; an object store's write is whole by itself)."""
    if "://" in path:
        with FileSystems.create(path) as handle:
            handle.write(data)
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_bytes(data)
    partial.replace(target)


def copy_tree(source: str, target: str) -> None:
    """Copies a directory's files to `target`, local or in an object store."""
    if "://" not in source and "://" not in target:
        shutil.copytree(source, target, dirs_exist_ok=True)
        return
    (found,) = FileSystems.match([FileSystems.join(source, "**")])
    files = [m.path for m in found.metadata_list]
    FileSystems.copy(files, [target + path[len(source) :] for path in files])
