"""vs-streamdiffvsr: streaming Stream-DiffVSR 4x video super-resolution for VapourSynth."""

from pathlib import Path

from setuptools import setup

setup(
    name="vs-streamdiffvsr",
    version="0.1.0",
    description="Stream-DiffVSR 4x video super-resolution as a stateful, seek-exact VapourSynth filter",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.12",
    packages=[
        "streamdiffvsr",
        "streamdiffvsr.vsfilter",
        "streamdiffvsr.cli",
        "streamdiffvsr.cli.commands",
        "streamdiffvsr.cli.settings",
        "streamdiffvsr.cli.media",
        "streamdiffvsr.cli.segments",
        "streamdiffvsr.cli.preview",
        "streamdiffvsr.presets",
        "streamdiffvsr.training",
    ],
    package_dir={
        "streamdiffvsr": "core",
        "streamdiffvsr.vsfilter": "vsfilter",
        "streamdiffvsr.cli": "scripts",
        "streamdiffvsr.presets": "presets",
        "streamdiffvsr.training": "training",
    },
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
        "dev": ["pytest>=8", "pytest-xdist>=3.5", "ruff>=0.6"],
        # streamdiffvsr.training (train_nano, eval_nano) also needs Debian's photos: apt-get install mate-backgrounds.
        "nano": ["scikit-image"],
    },
    entry_points={"console_scripts": ["streamdiffvsr=streamdiffvsr.cli.main:main"]},
)
