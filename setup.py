"""Installable package of the deepfake detection pipeline.

Two builds from one file. The default (`pip install -e .`, what `make install` does) is the
whole project: the jobs, what they serve, the operator tools (`deepfake <command>`) and the
offline training code. With DEEPFAKE_PACKAGE=serving it is what Dataflow workers install and
nothing else: the jobs' graph and what it serves (`SERVING`). The jobs' launcher sets it, so a
job launched with `--setup_file setup.py` stages the serving build, and the worker images
(`infra/*.Dockerfile`) install the same one; `tests/test_architecture.py` builds it and checks
its contents against what the jobs import.
"""

import os
import re
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
VERSION = re.search(r'PIPELINE_VERSION = "([^"]+)"', (ROOT / "schemas" / "version.py").read_text()).group(1)


# What the jobs import (the batch, streaming and transparency graphs, the models they serve).
SERVING = ("pipelines", "transforms", "enforcement", "models", "schemas", "warehouse")
# What runs offline or by hand: the operator tools and the training and evaluation code.
OFFLINE = ("tools", "training")
SERVING_BUILD = os.environ.get("DEEPFAKE_PACKAGE") == "serving"
PACKAGES = SERVING if SERVING_BUILD else SERVING + OFFLINE


def requirements(name: str) -> list[str]:
    lines = (ROOT / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith(("#", "-r"))]


setup(
    name="deepfake-defense",
    version=VERSION,
    description="Apache Beam pipelines that detect synthetic media and enforce policy on it at upload scale.",
    long_description=(ROOT / "README.md").read_text() if (ROOT / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=[name for package in PACKAGES for name in (package, f"{package}.*")]),
    package_data={"schemas": ["*.json", "*.csv"], "models": ["served/*/*/*", "served/*/*/variables/*"]},
    data_files=[("policies", [str(p.relative_to(ROOT)) for p in sorted((ROOT / "policies").glob("*.yaml"))])],
    install_requires=requirements("requirements.txt"),
    # One command for the jobs and the tools: `deepfake <command> [flags]` (tools/cli.py).
    entry_points={} if SERVING_BUILD else {"console_scripts": ["deepfake = tools.cli:main"]},
)
