"""vs-streamdiffvsr: streaming Stream-DiffVSR 4x video super-resolution for VapourSynth."""

import runpy
from pathlib import Path

from setuptools import find_packages, setup

# Each top folder and the import name it installs as; their subpackages are found, not listed.
FOLDERS = {
    "streamdiffvsr": "core",
    "streamdiffvsr.vsfilter": "vsfilter",
    "streamdiffvsr.cli": "scripts",
    "streamdiffvsr.presets": "presets",
    "streamdiffvsr.training": "training",
}


def packages() -> list[str]:
    """Every package of every top folder, with its installed name."""
    return [
        f"{name}.{sub}".rstrip(".")
        for name, folder in FOLDERS.items()
        for sub in ["", *find_packages(folder)]
    ]


setup(
    name="vs-streamdiffvsr",
    version=runpy.run_path("core/version.py")["__version__"],
    description="Stream-DiffVSR 4x video super-resolution as a stateful, seek-exact VapourSynth filter",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.12",
    packages=packages(),
    package_dir=FOLDERS,
    package_data={
        "streamdiffvsr": ["models/nano/*", "models/nano/*/*"],
        "streamdiffvsr.presets": ["*.toml"],
        "streamdiffvsr.cli": ["*.vpy"],
        "streamdiffvsr.cli.media": ["*.vpy"],
        "streamdiffvsr.cli.segments": ["*.vpy"],
    },
    install_requires=[
        "torch>=2.4",
        "torchvision>=0.19",
        "diffusers>=0.27",
        "accelerate>=0.30",
        "transformers>=4.40",
        "safetensors>=0.4",
        "huggingface-hub>=0.23",
        "numpy>=1.26",
        "opencv-python-headless>=4.8",
        "vapoursynth>=70",
        "vapoursynth-bestsource",
        "vapoursynth-bwdif",  # deinterlacing (streamdiffvsr.vsfilter.prepare_source)
        "vapoursynth-vivtc",  # inverse telecine: field matching and decimation
        "ray>=2.60,<3",  # segmented encodes on several workers (imported only then)
        "matplotlib>=3.8",  # preview: the flicker plot
        "pillow>=10.1",  # preview: the picture's labels
    ],
    extras_require={
        "xformers": ["xformers"],
        # setuptools: tests/test_wheel.py builds the wheel with the venv's own (no download)
        "dev": ["pytest>=8", "pytest-xdist>=3.5", "ruff>=0.6", "setuptools>=68"],
        # streamdiffvsr.training (train_nano, eval_nano) also needs Debian's photos: apt-get install mate-backgrounds.
        "nano": ["scikit-image"],
    },
    entry_points={"console_scripts": ["streamdiffvsr=streamdiffvsr.cli.main:main"]},
)
