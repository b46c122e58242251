"""Real photos and illustrations of every scene kind, for the tone tests and the quality benchmark.

Nothing is committed. Most images are wallpapers from Debian packages (``gnome-backgrounds``,
``mate-backgrounds``, ``ukui-wallpapers``, ``lomiri-wallpapers-16.04`` and ``-20.04``), picked by path
and checked by sha256 so that a package update is noticed; :func:`ensure_installed` installs the
packages the images name with ``apt-get`` when files are missing and the process is root (CI), and
fails clearly otherwise. The rest come with Python packages the project already installs:
scikit-image's photos and matplotlib's Grace Hopper portrait.

Each image has a scene kind (``low-key``: night, low light, sunsets, dark backgrounds; ``daylight``;
``high-key``: bright, white-dominated; ``portrait``: a face is the subject; ``illustration``:
rendered graphics) and a half: ``tune`` images may be looked at while choosing the policy's numbers,
``held`` images only to report them. The split was made once, alternating within each kind in the
order listed below, before any number was tuned; do not move an image between halves. A third set,
``CHECK_PHOTOS`` (half ``check``: KDE Plasma's wallpapers, installed only when asked for), was added
later to check the policy on images nobody tuned on; it is not part of ``SCENE_PHOTOS``.

:func:`blurred_ciede2000` is the tone-and-colour difference the tests and the benchmark bound.
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.color import deltaE_ciede2000, rgb2lab

SceneKind = Literal["low-key", "daylight", "high-key", "portrait", "illustration"]
Half = Literal["tune", "held", "check"]
KINDS: tuple[SceneKind, ...] = ("low-key", "daylight", "high-key", "portrait", "illustration")

BACKGROUNDS = Path("/usr/share/backgrounds")


@dataclass(frozen=True)
class ScenePhoto:
    """One image: ``name``; where it comes from (``package``: a Debian package, or ``scikit-image`` /
    ``matplotlib``); ``path`` (absolute for Debian files, else the file's name in the package's data
    folder); ``sha256`` of the file (Debian files only; None for Python packages' data); ``kind``;
    ``half``."""

    name: str
    package: str
    path: str
    sha256: str | None
    kind: SceneKind
    half: Half


def _deb(name: str, package: str, path: str, sha256: str, kind: SceneKind, half: Half) -> ScenePhoto:
    return ScenePhoto(name, package, str(BACKGROUNDS / path), sha256, kind, half)


# The benchmark set: 51 images (11 low-key, 17 daylight, 5 high-key, 4 portrait, 14 illustration).
SCENE_PHOTOS: tuple[ScenePhoto, ...] = (
    # Night, low light, sunsets, dark backgrounds.
    _deb(
        "wine",
        "lomiri-wallpapers-16.04",
        "Wine_by_Jakkub_Mede.jpg",
        "d2e96e6d4da40dd804b3d0ce295e94de04a2d7d9b6785d42cd9d92ba58bced74",
        "low-key",
        "tune",
    ),
    _deb(
        "seeding",
        "lomiri-wallpapers-16.04",
        "seeding_by_Clements_Engelhardt.jpg",
        "a5634d1ab5e41a3568e92d4a894a500c92b891f9ff734e50bd224d6e185a605f",
        "low-key",
        "held",
    ),
    _deb(
        "sunset",
        "lomiri-wallpapers-16.04",
        "sunset_by_Aitzol_Berasategi.jpg",
        "474dab6a4b9f94dc76c29dfe30e9f5db4af0fd2e33fe5d695f8152b371efca18",
        "low-key",
        "tune",
    ),
    _deb(
        "infinite_sea",
        "lomiri-wallpapers-20.04",
        "Infinite-Sea_by_Aury88.jpg",
        "9319dfb3651833881339a8d9b769b99efaf474969e6cd58e427eb2524aca8e8a",
        "low-key",
        "held",
    ),
    _deb(
        "aqua",
        "mate-backgrounds",
        "mate/nature/Aqua.jpg",
        "5c30118205982da441bf7e6a1ada636a8a0be879408140b3148280c665ed6bce",
        "low-key",
        "tune",
    ),
    _deb(
        "storm",
        "mate-backgrounds",
        "mate/nature/Storm.jpg",
        "77ca53077831d3237f73393a91fc879158abc046d852941c26e90de336356957",
        "low-key",
        "held",
    ),
    _deb(
        "yellow_flower",
        "mate-backgrounds",
        "mate/nature/YellowFlower.jpg",
        "254da96256acb7add685679775a04d1e4a5bc8cd13e5a5a3d61351ce198a5306",
        "low-key",
        "tune",
    ),
    _deb(
        "aurora_cold",
        "mate-backgrounds",
        "mate/desktop/Ubuntu-Mate-Cold-no-logo.png",
        "15028ca8e851921a30c859239b8072b5f170783c532abaf176e34b18ed988c5d",
        "low-key",
        "held",
    ),
    _deb(
        "aurora_warm",
        "mate-backgrounds",
        "mate/desktop/Ubuntu-Mate-Warm-no-logo.png",
        "4f820953263548c60a33c13d7633dbe5f415b54e42a0854c926f1b778aaef602",
        "low-key",
        "tune",
    ),
    ScenePhoto("hubble", "scikit-image", "hubble_deep_field.jpg", None, "low-key", "held"),
    _deb(
        "brushes",
        "lomiri-wallpapers-16.04",
        "Picture_1A_by_freespace.jpg",
        "89e86af38d04daaef975665dc2127e9fa76f0fd68f4eea105a2d0ae3390b010b",
        "low-key",
        "tune",
    ),
    # Daylight.
    _deb(
        "dragonfly",
        "lomiri-wallpapers-16.04",
        "Dragonfly_by_Bolly.jpg",
        "af5af17841009732def24b09bb1e669a1b09d2b4bdeee7812c371101c30d2bb3",
        "daylight",
        "tune",
    ),
    _deb(
        "fig",
        "lomiri-wallpapers-16.04",
        "Picture_0B_by_freespace.jpg",
        "c8c0ab18e48d9e0419fe42881112137f3afafc27dfddc29ec3a6d54c56d225ad",
        "daylight",
        "held",
    ),
    _deb(
        "aitzgorri",
        "lomiri-wallpapers-16.04",
        "aitzgorri_by_Aitzol_Berasategi.jpg",
        "66268e7b48f8854d36a28765fac6e23ec1aee251daa6da1f64715f201020ad36",
        "daylight",
        "tune",
    ),
    _deb(
        "friends",
        "lomiri-wallpapers-16.04",
        "friends_by_Aitzol_Berasategi.jpg",
        "cc40e313c74e421edffe3403def413c16878ce14661cce7ec5915baeab35538d",
        "daylight",
        "held",
    ),
    _deb(
        "life",
        "lomiri-wallpapers-16.04",
        "life_by_Aitzol_Berasategi.jpg",
        "4c119350ead80201fe256850c3d316309ddfb4bdf10b235ce982dcde0c667c05",
        "daylight",
        "tune",
    ),
    _deb(
        "picos",
        "lomiri-wallpapers-16.04",
        "picosdeeuropa_by_Aitzol_Berasategi.jpg",
        "414d0072b2f6f2c555deafeaef6e45c4fed6fa9ad26eba6560ca8803959cf97a",
        "daylight",
        "held",
    ),
    _deb(
        "blinds",
        "mate-backgrounds",
        "mate/nature/Blinds.jpg",
        "f7aac0dcc2e06d0491643e84df3da1d9db7c4610f58806a880d56e074799f600",
        "daylight",
        "tune",
    ),
    _deb(
        "dune",
        "mate-backgrounds",
        "mate/nature/Dune.jpg",
        "8a67c2cb0be8c46b70c237311a4fa4d2b4ac7d39568135384787801fa5cc9a91",
        "daylight",
        "held",
    ),
    _deb(
        "fresh_flower",
        "mate-backgrounds",
        "mate/nature/FreshFlower.jpg",
        "972b0a0c4e5e3fa93f4f244fc84bc64b121a5eac3aaa5856f1308c1f38a02f8e",
        "daylight",
        "tune",
    ),
    _deb(
        "garden",
        "mate-backgrounds",
        "mate/nature/Garden.jpg",
        "d3095ee09d425ef23d27155412136cf14fc3c9af76ca58b452f55e23da324e78",
        "daylight",
        "held",
    ),
    _deb(
        "ladybird",
        "mate-backgrounds",
        "mate/nature/LadyBird.jpg",
        "e35a9a4126ef969c90b29c038058c5a575a20eadd84106a37bf1fa9931e7b61d",
        "daylight",
        "tune",
    ),
    _deb(
        "rain_drops",
        "mate-backgrounds",
        "mate/nature/RainDrops.jpg",
        "3e4ea9671c28c90a86cf67b3db9daf18c4741587c596333a7529ca589aaa0c16",
        "daylight",
        "held",
    ),
    _deb(
        "two_wings",
        "mate-backgrounds",
        "mate/nature/TwoWings.jpg",
        "665e5abf8a5399070a91a9a8e455fe071e5b61697ff78fdeda4e9843ef545aeb",
        "daylight",
        "tune",
    ),
    _deb(
        "green_meadow",
        "mate-backgrounds",
        "mate/nature/GreenMeadow.jpg",
        "8fa0de0aa4089f7319c9fb7a6d006d4cab6023e8c8853731557cff53567b4832",
        "daylight",
        "held",
    ),
    ScenePhoto("coffee", "scikit-image", "coffee.png", None, "daylight", "tune"),
    ScenePhoto("rocket", "scikit-image", "rocket.jpg", None, "daylight", "held"),
    ScenePhoto("motorcycle", "scikit-image", "motorcycle_left.png", None, "daylight", "tune"),
    # High-key.
    _deb(
        "free",
        "lomiri-wallpapers-16.04",
        "free_by_Peter_Nerlich.jpg",
        "85a5453c2fed514c75973016f3d862aca62eb7ca087618822469274ac1092373",
        "high-key",
        "tune",
    ),
    _deb(
        "greentock",
        "lomiri-wallpapers-16.04",
        "greentock_by_Peter_Nerlich.jpg",
        "e7b20e2db9dcd6e2b278ca55873c2110b35d89cd38b04d0b18728726888e6889",
        "high-key",
        "held",
    ),
    _deb(
        "kleiber",
        "lomiri-wallpapers-20.04",
        "Kleiber_by_Lukas_Baubkus.jpg",
        "6572410c09f4492c74ccadde133565a14c0161617d5917d4c820c66d65a44ba7",
        "high-key",
        "tune",
    ),
    _deb(
        "wood",
        "mate-backgrounds",
        "mate/nature/Wood.jpg",
        "19c78500ac00a622e19907ab9cc7d06d46fe08c4a6142759a84195696150ec07",
        "high-key",
        "held",
    ),
    _deb(
        "bridge",
        "lomiri-wallpapers-16.04",
        "Bridge_by_Sander_Klootwijk.jpg",
        "bd86b081f9975e2b83527f71e49b9271a8ab40885428395969d9f7d834d7f050",
        "high-key",
        "tune",
    ),
    # Portraits.
    ScenePhoto("astronaut", "scikit-image", "astronaut.png", None, "portrait", "tune"),
    ScenePhoto("hopper", "matplotlib", "grace_hopper.jpg", None, "portrait", "held"),
    ScenePhoto("chelsea", "scikit-image", "chelsea.png", None, "portrait", "tune"),
    ScenePhoto("camera", "scikit-image", "camera.png", None, "portrait", "held"),
    # Illustrations.
    _deb(
        "umang",
        "lomiri-wallpapers-16.04",
        "umang_by_Abhishek_Mudgal.jpg",
        "bfb425545e77e9f0eb1b037b607fc9ed4a446f3b0f04aa2879be3556073c57ef",
        "illustration",
        "tune",
    ),
    _deb(
        "fossa",
        "lomiri-wallpapers-20.04",
        "Fossa_by_Jasper_Roks.jpg",
        "4e1f6bfd73f374ac28adbf37d5f9f7ce847dccba71e860f0ff50509316be1f82",
        "illustration",
        "held",
    ),
    _deb(
        "painting_colors",
        "lomiri-wallpapers-20.04",
        "Painting-Colors_by__herobrine7gamer.jpg",
        "dc688df829e177f23d5e2761a198d2e44e477e4b3b3c750661052c89f7abc46c",
        "illustration",
        "tune",
    ),
    _deb(
        "ribbon",
        "ukui-wallpapers",
        "2004default.jpg",
        "3a9ce649f4cc97bec5f53eba56b73d4186efa86de0708bf1d85236eeeb875ca8",
        "illustration",
        "held",
    ),
    _deb(
        "calla",
        "ukui-wallpapers",
        "calla.png",
        "26fc5b5461f37132d913c9b03a48392e59a58f66e665cc5dfc2d997bda4190d4",
        "illustration",
        "tune",
    ),
    _deb(
        "goldfish",
        "ukui-wallpapers",
        "goldfish.png",
        "a01ef5d91bfe63fd77e91107ebb83fe203b39ad09cfb40488c56d21f50dffe0f",
        "illustration",
        "held",
    ),
    _deb(
        "the_mouse",
        "ukui-wallpapers",
        "the-mouse.jpg",
        "e4717d5cb7dd3ed12cf0883567b7f2ca38dd83a073a12fc666e8c3b87c3abf79",
        "illustration",
        "tune",
    ),
    _deb(
        "focal",
        "ukui-wallpapers",
        "focal-ubuntukylin.png",
        "3590397864dfceb16f14fc7646c5465a691082fd33a5fc8702c31d954fd9ef0a",
        "illustration",
        "held",
    ),
    _deb(
        "string",
        "ukui-wallpapers",
        "string.jpg",
        "73fd26471a45955d256e9318fb24e7ec3a6a922fdc12ec3080c75d2a8da8ab3d",
        "illustration",
        "tune",
    ),
    _deb(
        "elephants",
        "mate-backgrounds",
        "mate/abstract/Elephants.jpg",
        "b402668de7212c568090edc032288759029e15e5153f3ae43f079abfd44105a4",
        "illustration",
        "held",
    ),
    _deb(
        "adwaita_dark",
        "gnome-backgrounds",
        "gnome/adwaita-d.webp",
        "c4b3fed40deae59f4d296b8f12b0ece7c178c4cfabe9442a260126af5a67819c",
        "illustration",
        "tune",
    ),
    _deb(
        "pixels_light",
        "gnome-backgrounds",
        "gnome/pixels-l.webp",
        "1ee02e123d937bdcbc6ec848cda8b54f7acdddf5c0cec9f8aa6f4b2182835711",
        "illustration",
        "held",
    ),
    _deb(
        "truchet_dark",
        "gnome-backgrounds",
        "gnome/truchet-d.webp",
        "1ea4da549d93dd4a7fadf08705883435f8158159d9c57e72f7cb56a758ccef15",
        "illustration",
        "tune",
    ),
    _deb(
        "wood_dark",
        "gnome-backgrounds",
        "gnome/wood-d.webp",
        "8cf3f7c0fbdf4376161d419169e23aa1f3a03367c4bb6e25d7e45428a8b9378f",
        "illustration",
        "held",
    ),
)

WALLPAPERS = Path("/usr/share/wallpapers")


def _plasma(name: str, path: str, sha256: str, kind: SceneKind) -> ScenePhoto:
    return ScenePhoto(
        f"kde_{name}", "plasma-workspace-wallpapers", str(WALLPAPERS / name / path), sha256, kind, "check"
    )


# The check set: 30 images nobody tuned on (12 photos: 3 low-key, 8 daylight, 1 high-key; 18
# illustrations), KDE Plasma's wallpapers (``plasma-workspace-wallpapers``, 94 MB, installed only when
# asked for: ``bench_quality.py --half check``), each at its widest landscape size. Added in issue 22's
# fifth round after the policy was chosen, to check it on images the tuning never saw: measure them,
# never tune on them.
CHECK_PHOTOS: tuple[ScenePhoto, ...] = (
    _plasma(
        "Altai",
        "contents/images/5120x2880.png",
        "f693f572875536b41935417f88d523bb0174b77c2dd7f00b71cd55436f93387d",
        "illustration",
    ),
    _plasma(
        "Autumn",
        "contents/images/2560x1600.jpg",
        "dfded25df13f5c2dfee68cafb23f69c3efb32b8a6931d82ebbe42de9810dd1e4",
        "illustration",
    ),
    _plasma(
        "BytheWater",
        "contents/images/2560x1600.jpg",
        "c272434ef39f2abf1ed48a15a8910088020f3165329a5092f3940ec9464bc05f",
        "daylight",
    ),
    _plasma(
        "Canopee",
        "contents/images/3840x2160.png",
        "c538a5a7f7f78fbc129006b889acd8580e088f070df83509a1a7a7af9681ae43",
        "illustration",
    ),
    _plasma(
        "Cascade",
        "contents/images/3840x2160.png",
        "1915b53a6c0679595cdc3601dd3fc2984774152cbe40550b338d0121a41828c8",
        "illustration",
    ),
    _plasma(
        "Cluster",
        "contents/images/3840x2160.png",
        "e3e77c68791e1b7cc2e46bc9428798ac5582e9f88e1d6ca570078129437e596f",
        "illustration",
    ),
    _plasma(
        "ColdRipple",
        "contents/images/2560x1600.jpg",
        "05bef6722fc0ed81292cceb3ed026c38d17e510f3c84be7d68610c2b1a723c3f",
        "high-key",
    ),
    _plasma(
        "ColorfulCups",
        "contents/images/2560x1600.jpg",
        "6e0f3a72feb5a4a9fec191b77e34874c3c69e2d93040deb3f07773e73385023d",
        "daylight",
    ),
    _plasma(
        "DarkestHour",
        "contents/images/2560x1600.jpg",
        "8e3703fae3a3c217b1fc2b399b706cd3720584268d071ba153e4809daa55f1ce",
        "low-key",
    ),
    _plasma(
        "Elarun",
        "contents/images/2560x1600.png",
        "ce4d7a22554fdc4d170c56bdee699e92ef6d721f4507f963702ed866029c01ed",
        "illustration",
    ),
    _plasma(
        "EveningGlow",
        "contents/images/2560x1600.jpg",
        "586682dcb362b9f620068f10138f87d0d3649939aef238adc5807cb951976a7a",
        "low-key",
    ),
    _plasma(
        "FallenLeaf",
        "contents/images/2560x1600.jpg",
        "95603a6560c7e8d50e0e03b3f4adbe39c5258c72528e74e4ecaea1daf4e499de",
        "daylight",
    ),
    _plasma(
        "Flow",
        "contents/images/5120x2880.jpg",
        "b2f1fbe9ebf772fed224de83ee4159cc3735c633a88cc42f8f45d49ccd12efc3",
        "illustration",
    ),
    _plasma(
        "FlyingKonqui",
        "contents/images/2560x1600.png",
        "856ecdf80b8253759629ae2c76d25d63d79fa81dbf05e4ee7ae0c95454e555bb",
        "illustration",
    ),
    _plasma(
        "Grey",
        "contents/images/2560x1600.jpg",
        "88c31d8944b7e6935d1b9a296654c692f0772cb512491713eb30a972a604c0ed",
        "daylight",
    ),
    _plasma(
        "Honeywave",
        "contents/images/5120x2880.jpg",
        "e75adbd953e9b7dc8946223e7f1f2c4a9378496e7597198f65b095356995c7ad",
        "illustration",
    ),
    _plasma(
        "IceCold",
        "contents/images/5120x2880.png",
        "4f000813086b839f4845e40bb51385e2e2afaf1df5bf55514d808f70611a63e6",
        "illustration",
    ),
    _plasma(
        "Kay",
        "contents/images/5120x2880.png",
        "2b2fcfe33dbf701deb524f04231a3966e40f3239baf70469318c00c3961c2458",
        "illustration",
    ),
    _plasma(
        "Kite",
        "contents/images/2560x1600.jpg",
        "bdca288ce296a981e80659c021cf707caddc702c0c8d4247e60bd618476d47f8",
        "daylight",
    ),
    _plasma(
        "Kokkini",
        "contents/images/3840x2160.png",
        "ba6fbd6ca54e4fef11e6c3e0b4f8fce21305846c7fcc2bcac6b4e15c75343d46",
        "illustration",
    ),
    _plasma(
        "MilkyWay",
        "contents/images/5120x2880.png",
        "777b501b626c0e8417167229187a787bbaf2b59c83f8343c18d1b0486e754296",
        "illustration",
    ),
    _plasma(
        "OneStandsOut",
        "contents/images/2560x1600.jpg",
        "cb507baf1dafdcae362264f3aba9483ed4be5f6c9fdd770f0ec0920c6d9e80fd",
        "daylight",
    ),
    _plasma(
        "Opal",
        "contents/images/3840x2160.png",
        "bdc37f083dd498c54b853a273b2518a6402dbece172cc2d7873c478d70e06b20",
        "illustration",
    ),
    _plasma(
        "PastelHills",
        "contents/images/3200x2000.jpg",
        "8a5f3dc3ddc75687b5cc83833acb1ec9ce0b03d6529b2dace584707485447506",
        "illustration",
    ),
    _plasma(
        "Patak",
        "contents/images/5120x2880.png",
        "e8f6167bafea78c54e2b736c448ce22809cc0bd085fb3a371d71546e956e7391",
        "illustration",
    ),
    _plasma(
        "Path",
        "contents/images/2560x1600.jpg",
        "7477457d7f17b736259f1b021864778ad4ba802cf3214e6728181ff29126bba8",
        "daylight",
    ),
    _plasma(
        "SafeLanding",
        "contents/images/5120x2880.jpg",
        "7341ff2532d1a13a2ba35f2a9219a2c6cb070446f1aae4ce9a3a981c3bedd32f",
        "illustration",
    ),
    _plasma(
        "Shell",
        "contents/images/5120x2880.jpg",
        "220d5fe725453dba2329b6733cb7094d8615f2e0bbbb8a150e9f113101c02213",
        "illustration",
    ),
    _plasma(
        "Volna",
        "contents/images/5120x2880.jpg",
        "abc30b4fc6f6a83b6156e6b59ac283c067de40af820aafac8ac7c4fd83a9607c",
        "daylight",
    ),
    _plasma(
        "summer_1am",
        "contents/images/2560x1600.jpg",
        "c868b50789591dd42910153c768053f1ba0a98cb36bbfc2b7a96a1045d0477f8",
        "low-key",
    ),
)
PHOTO_BY_NAME = {photo.name: photo for photo in (*SCENE_PHOTOS, *CHECK_PHOTOS)}
# What to install: lomiri-wallpapers pulls in both of its versioned packages.


class ScenePhotoError(RuntimeError):
    """Raised by :func:`ensure_installed` when a Debian image is missing and cannot be installed, or
    when an installed file's sha256 differs from the one recorded here (the package changed)."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.cache
def ensure_installed(photos: tuple[ScenePhoto, ...] = SCENE_PHOTOS) -> None:
    """Make sure every Debian image of ``photos`` is present and unchanged: install their packages with
    ``apt-get`` when one is missing and this process is root. Raises :class:`ScenePhotoError` otherwise."""
    debian = [photo for photo in photos if photo.sha256 is not None]
    missing = [photo for photo in debian if not Path(photo.path).is_file()]
    if missing:
        packages = sorted({photo.package for photo in debian})
        if os.geteuid() != 0:
            raise ScenePhotoError(
                f"{len(missing)} scene photos are missing (first: {missing[0].path}); run as root, or install "
                f"them: apt-get install -y --no-install-recommends {' '.join(packages)}"
            )
        command = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        result = subprocess.run(command, capture_output=True, text=True, env=environment)
        if result.returncode != 0:
            raise ScenePhotoError(f"{' '.join(command)} failed: {result.stderr.strip()[-500:]}")
        still = [photo.path for photo in debian if not Path(photo.path).is_file()]
        if still:
            raise ScenePhotoError(f"installed the packages but these files are still missing: {still}")
    for photo in debian:
        if _sha256(Path(photo.path)) != photo.sha256:
            raise ScenePhotoError(
                f"{photo.path} (from {photo.package}) has changed: its sha256 is not the recorded one; "
                "check the image and its label, then update the record in tests/scene_photos.py"
            )


def _source_path(photo: ScenePhoto) -> Path:
    if photo.package == "scikit-image":
        import skimage.data

        return Path(os.path.dirname(skimage.data.__file__)) / photo.path
    if photo.package == "matplotlib":
        import matplotlib

        return Path(matplotlib.get_data_path()) / "sample_data" / photo.path
    ensure_installed()
    return Path(photo.path)


@functools.lru_cache(maxsize=64)
def load_original(name: str, long_side: int = 512) -> np.ndarray:
    """Image ``name`` as uint8 H×W×3 RGB, Lanczos-downsized so that its long side is ``long_side``
    (smaller images are kept as they are), both sides even multiples of 4 (cropped by a few pixels) so
    a ×4 smaller input maps exactly onto it. Grey images are repeated into three channels."""
    with Image.open(_source_path(PHOTO_BY_NAME[name])) as opened:
        if opened.format == "JPEG":
            opened.draft("RGB", (2 * long_side, 2 * long_side))  # decode at a DCT-reduced size first
        image = opened.convert("RGB")
    ratio = min(1.0, long_side / max(image.size))
    size = (max(4, round(image.width * ratio)), max(4, round(image.height * ratio)))
    if size != image.size:
        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    width, height = image.width - image.width % 4, image.height - image.height % 4
    left, top = (image.width - width) // 2, (image.height - height) // 2
    return np.ascontiguousarray(np.asarray(image)[top : top + height, left : left + width])


def blurred_ciede2000(output: np.ndarray, original: np.ndarray, sigma: float = 4.0) -> float:
    """Tone-and-colour difference of ``output`` from ``original`` (uint8 H×W×3 sRGB, same size): the mean
    CIEDE2000 after blurring both with a Gaussian of ``sigma`` px, so that detail does not count (a
    Lanczos upscale of a clean ×4 smaller copy scores 0.1-0.4; a +1 EV brightening 6-18)."""
    if output.shape != original.shape:
        raise ValueError(f"shapes differ: {output.shape} vs {original.shape}")
    blurred = [ndimage.gaussian_filter(x.astype(np.float64) / 255.0, (sigma, sigma, 0)) for x in (output, original)]
    return float(np.mean(deltaE_ciede2000(rgb2lab(blurred[1]), rgb2lab(blurred[0]))))
