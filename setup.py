"""csi: a recipe toolkit for cover song identification."""
from setuptools import find_packages, setup

setup(
    name="csi",
    version="0.1.0",
    description="Cover song identification toolkit (CoverHunter-compatible recipes)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["csi", "csi.*", "tools", "tools.*", "synthcovers", "synthcovers.*", "audiofp", "audiofp.*", "jobs", "jobs.*"]),
    # torch is pinned by utils/install.sh (torch==2.13.0, a CPU wheel here); a loose
    # range is enough for pip to keep an installed torch instead of pulling a CUDA build.
    install_requires=[
        "torch>=2.0",
        "nnAudio>=0.3",
        "numpy",
        "scipy",
        "pyyaml",
        "soundfile>=0.12",
        "soxr",
        "tensorboard",
        "faiss-cpu",
        "tqdm",
        "matplotlib",  # evaluation plots (distance histograms, embedding maps)
        "h5py",  # features shipped as HDF5 (Da-TACOS, csi.io.h5features)
        "numba",  # the best-pairs track distance kernel (csi.scoring.best_pairs; torch fallback without it)
    ],
    # the `csi` command: csi identify|embed|eval|index|train|baseline|serve|TOOL (tools.csi_command)
    entry_points={"console_scripts": ["csi = tools.csi_command:main"]},
    extras_require={
        # essentia: the Qmax parity test only (tests/csi/baselines/test_qmax.py skips without it)
        # click, python-slugify, intervaltree: what the HEAR 2021 clients (heareval,
        # hearvalidator; installed by utils/install.sh with --no-deps, their pins being for
        # Python 3.8) import for tests/csi/test_hear_clients.py
        # playwright: drives the system Chromium in tests/csi/serve (no browser download)
        # av: PyAV, ffmpeg's decoders for .mp4/.m4a/.webm downloads (csi.io.audio; optional
        # for users, who get a clear message without it)
        # audfprint2: Dan Ellis's landmark fingerprinter, the peer in the fingerprint bench
        "dev": ["pytest", "pytest-timeout", "essentia", "click", "python-slugify", "intervaltree",
                "playwright", "av", "audfprint2"],
        # offline demo corpus: scores from music21, MIDI rendered with pretty_midi's
        # bundled General MIDI soundfont through tinysoundfont. tinysoundfont itself is
        # installed by utils/install.sh with --no-deps: it declares pyaudio (live
        # playback only), which needs PortAudio headers to build.
        "demo": ["music21", "pretty_midi"],
    },
)
