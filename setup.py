"""Installable package of the deepfake detection pipeline.

Also serves as Dataflow's `--setup_file`: workers install the same packages and modules.
"""

import re
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
VERSION = re.search(r'PIPELINE_VERSION = "([^"]+)"', (ROOT / "schemas" / "version.py").read_text()).group(1)


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
    # The corpus generator (models/corpus/) is a development tool: workers never import it.
    packages=find_packages(
        include=[
            "pipelines",
            "pipelines.*",
            "transforms",
            "transforms.*",
            "enforcement",
            "enforcement.*",
            "models",
            "models.*",
            "schemas",
            "schemas.*",
            "warehouse",
            "warehouse.*",
            "tools",
            "tools.*",
        ],
        exclude=["models.corpus", "models.corpus.*"],
    ),
    package_data={"schemas": ["*.json", "*.csv"], "models": ["served/*/*/*", "served/*/*/variables/*"]},
    data_files=[("policies", [str(p.relative_to(ROOT)) for p in sorted((ROOT / "policies").glob("*.yaml"))])],
    install_requires=requirements("requirements.txt"),
    # One command for the jobs and the tools: `deepfake <command> [flags]` (tools/cli.py).
    entry_points={"console_scripts": ["deepfake = tools.cli:main"]},
)
