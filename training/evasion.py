"""Evasion sets: the test split with what an uploader controls changed, for the real job to score.

    python -m training.evasion --corpus DIR [DIR ...] --out OUT [--seed 7]

Two manipulations, each the cheapest an uploader has, plus the test split as it was:

* `original`: the test items with their own files and events (the "before");
* `synthetic_stripped`: every synthetic test item with its file's metadata stripped (EXIF,
  XMP, text chunks, comments, C2PA, container tags: what `exiftool -all=` or a remux with
  `-map_metadata -1` does, the pixels and samples untouched) and every optional event field
  left out but a clean, aged account (six years old, no strikes): a deepfake laundered
  through a fresh file and an account in good standing;
* `real_bare`: every real test item with every optional event field left out (no account, no
  disclosure answer, no surface, country or notice): what an ingestion path that joins no
  context sends, the case the shipped policy removed on.

Each set is a manifest and a labels file in the corpus format, so `pipelines.batch` scores
it with the served models and the shipped policy, and `training.outcomes` reads what it did.
Unchanged items name the corpus's own media files, outside the set's folder: the job reads them
with `--media_root` the corpora's parent folder (it reads nothing outside its media roots).
Stripping works on the bytes: JPEG segments, PNG chunks, WebP RIFF chunks and GIF extension
blocks are dropped without decoding a pixel; audio and video are remuxed stream by stream.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import struct
import sys
from pathlib import Path
from typing import Any

import av

from training.splits import item_split

VARIANTS = ("original", "synthetic_stripped", "real_bare")
REQUIRED_FIELDS = ("content_id", "media_uri", "account_id", "uploaded_at")
CLEAN_ACCOUNT_AGE = dt.timedelta(days=6 * 365)

# JPEG: APP1-APP15 (EXIF, XMP, ICC, IPTC, JUMBF/C2PA, ...) and comments go; APP0 (JFIF) and
# APP14 (Adobe: how to read the colour channels) stay, since decoding needs them.
_JPEG_DROP = {*range(0xE1, 0xEE), 0xEF, 0xFE}
# PNG: chunks that decode or colour the picture (and APNG's animation) stay, the rest go.
_PNG_KEEP = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"sBIT", b"acTL", b"fcTL",
             b"fdAT", b"bKGD", b"pHYs"}  # fmt: skip
_WEBP_DROP = {b"EXIF", b"XMP ", b"ICCP"}


class StripError(ValueError):
    """The bytes are not media this module can strip."""


def _strip_jpeg(data: bytes) -> bytes:
    out, position = [data[:2]], 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            raise StripError(f"JPEG marker expected at byte {position}")
        marker = data[position + 1]
        if marker == 0xDA:  # start of scan: the entropy-coded data and the rest stay as they are
            out.append(data[position:])
            return b"".join(out)
        length = struct.unpack(">H", data[position + 2 : position + 4])[0]
        segment = data[position : position + 2 + length]
        if marker not in _JPEG_DROP:
            out.append(segment)
        position += 2 + length
    raise StripError("JPEG without a start of scan")


def _strip_png(data: bytes) -> bytes:
    out, position = [data[:8]], 8
    while position + 8 <= len(data):
        length = struct.unpack(">I", data[position : position + 4])[0]
        kind = data[position + 4 : position + 8]
        chunk = data[position : position + 12 + length]
        if kind in _PNG_KEEP:
            out.append(chunk)
        position += 12 + length
        if kind == b"IEND":
            break
    return b"".join(out)


def _strip_webp(data: bytes) -> bytes:
    chunks, position = [], 12
    while position + 8 <= len(data):
        kind = data[position : position + 4]
        size = struct.unpack("<I", data[position + 4 : position + 8])[0]
        chunk = data[position : position + 8 + size + (size & 1)]
        if kind == b"VP8X":  # clear the ICC, EXIF and XMP flags of the extended header
            flags = chunk[8] & ~(0x20 | 0x08 | 0x04)
            chunk = chunk[:8] + bytes([flags]) + chunk[9:]
        if kind not in _WEBP_DROP:
            chunks.append(chunk)
        position += 8 + size + (size & 1)
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _gif_sub_blocks_end(data: bytes, position: int) -> int:
    while data[position] != 0:
        position += data[position] + 1
    return position + 1


def _strip_gif(data: bytes) -> bytes:
    flags = data[10]
    position = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
    out = [data[:position]]
    while position < len(data):
        introducer = data[position]
        if introducer == 0x3B:  # trailer
            out.append(data[position : position + 1])
            break
        if introducer == 0x21:
            label = data[position + 1]
            end = _gif_sub_blocks_end(data, position + 2)
            application = data[position + 3 : position + 14] if label == 0xFF else b""
            # Comments and application data go, but for the loop count an animation needs.
            if label not in (0xFE, 0xFF) or application == b"NETSCAPE2.0":
                out.append(data[position:end])
            position = end
        elif introducer == 0x2C:
            local = data[position + 9]
            start = position + 10 + (3 * 2 ** ((local & 7) + 1) if local & 0x80 else 0)
            end = _gif_sub_blocks_end(data, start + 1)  # after the LZW minimum code size
            out.append(data[position:end])
            position = end
        else:
            raise StripError(f"GIF block introducer {introducer:#x} at byte {position}")
    return b"".join(out)


def _strip_container(data: bytes) -> bytes:
    """Remuxes every audio and video stream as it is, with no container or stream tags."""
    output_buffer = io.BytesIO()
    with av.open(io.BytesIO(data), metadata_errors="ignore") as source:
        name = source.format.name.split(",")[0]
        format_name = {"mov": "mp4", "matroska": "webm" if "webm" in source.format.name else "matroska"}.get(name, name)
        streams = [s for s in source.streams if s.type in ("audio", "video")]
        with av.open(output_buffer, "w", format=format_name, options={"fflags": "+bitexact"}) as output:
            mapping = {s.index: output.add_stream_from_template(s) for s in streams}
            for out_stream in mapping.values():
                out_stream.metadata.clear()
            for packet in source.demux(streams):
                if packet.dts is None:
                    continue
                packet.stream = mapping[packet.stream.index]
                output.mux(packet)
    return output_buffer.getvalue()


def strip_metadata(data: bytes) -> bytes:
    """The same media with nothing about its origin left: no EXIF, XMP, IPTC, ICC, text
    chunks, comments, C2PA manifest or container tags. Pixels and samples are untouched.

    Raises:
        StripError: the bytes are not an image or a container this module knows.
    """
    if data[:2] == b"\xff\xd8":
        return _strip_jpeg(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _strip_png(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _strip_webp(data)
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return _strip_gif(data)
    try:
        return _strip_container(data)
    except (av.FFmpegError, ValueError) as exc:
        raise StripError(f"not an image or container that can be stripped: {exc}") from exc


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def bare_event(event: dict[str, Any]) -> dict[str, Any]:
    """The event with every optional field left out."""
    return {k: event[k] for k in REQUIRED_FIELDS}


def aged_account_event(event: dict[str, Any]) -> dict[str, Any]:
    """The event with every optional field left out but a clean account six years old."""
    uploaded = dt.datetime.fromisoformat(event["uploaded_at"].replace("Z", "+00:00"))
    account = {"created_at": _rfc3339(uploaded - CLEAN_ACCOUNT_AGE), "verified": False, "high_profile": False,
               "prior_strikes": 0}  # fmt: skip
    return bare_event(event) | {"account": account}


def build(corpora: list[Path], out: Path, seed: int) -> dict[str, dict[str, int]]:
    """Writes OUT/<variant>/manifest.jsonl and labels.jsonl (and stripped media) for the test
    split of the corpora; returns the counts per variant and label."""
    counts: dict[str, dict[str, int]] = {v: {"real": 0, "synthetic": 0, "unstrippable": 0} for v in VARIANTS}
    rows: dict[str, list[tuple[dict, dict]]] = {v: [] for v in VARIANTS}
    media = out / "synthetic_stripped" / "media"
    media.mkdir(parents=True, exist_ok=True)
    for corpus in corpora:
        labels = {}
        for line in (corpus / "labels.jsonl").read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                labels[row["content_id"]] = row
        for line in (corpus / "manifest.jsonl").read_text().splitlines():
            if not line.strip():
                continue
            event = json.loads(line)
            label = labels[event["content_id"]]
            if label["label"] not in ("real", "synthetic") or item_split(label, seed) != "test":
                continue
            original = str((corpus / event["media_uri"]).resolve())
            rows["original"].append((event | {"media_uri": original}, label))
            counts["original"][label["label"]] += 1
            if label["label"] == "real":
                rows["real_bare"].append((bare_event(event) | {"media_uri": original}, label))
                counts["real_bare"]["real"] += 1
                continue
            try:
                stripped = strip_metadata(Path(original).read_bytes())
            except StripError as exc:
                print(f"{event['content_id']}: left out of synthetic_stripped: {exc}", file=sys.stderr)
                counts["synthetic_stripped"]["unstrippable"] += 1
                continue
            path = media / Path(original).name
            path.write_bytes(stripped)
            rows["synthetic_stripped"].append((aged_account_event(event) | {"media_uri": str(path.resolve())}, label))
            counts["synthetic_stripped"]["synthetic"] += 1
    for variant, items in rows.items():
        directory = out / variant
        directory.mkdir(parents=True, exist_ok=True)
        items.sort(key=lambda item: (item[0]["uploaded_at"], item[0]["content_id"]))
        with open(directory / "manifest.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(event, sort_keys=True, ensure_ascii=False) + "\n" for event, _ in items)
        with open(directory / "labels.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(label, sort_keys=True) + "\n" for _, label in items)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evasion", description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", nargs="+", required=True, help="Corpus directories (manifest.jsonl, labels.jsonl).")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=7, help="The models' split seed (their cards say it).")
    args = parser.parse_args(argv)
    counts = build([Path(c) for c in args.corpus], Path(args.out), args.seed)
    for variant, numbers in counts.items():
        print(f"{variant:<20} {numbers}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
