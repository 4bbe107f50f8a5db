import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
VERSION = re.search(r'^__version__ = "([^"]+)"$', (HERE / "tdsnn" / "__init__.py").read_text(), re.M).group(1)

setup(
    name="tdsnn",
    version=VERSION,
    description="Topographic Deep Spiking Neural Networks (TDSNNs) with a Brain-Score plugin and benchmark harness",
    url="https://github.com/tdsnn/tdsnn",
    python_requires=">=3.11",
    packages=find_packages(include=["tdsnn", "tdsnn.*", "brainscore_plugin", "brainscore_plugin.*",
                                    "harness", "harness.*"]),
    # The registry, its weights (the offline default of `create_model(..., pretrained=True)`) and
    # its sweeps' trade-off files (a harness report of a sweep's models includes its figure).
    package_data={"tdsnn": ["model_registry.yaml", "weights/*.safetensors", "weights/*.md",
                            "sweeps/*/tradeoff.*"]},
    install_requires=[
        "torch~=2.14.1",  # scripts/setup.sh installs exactly 2.14.1 / 0.29.1, the tested versions
        "torchvision~=0.29.1",
        "spikingjelly==2.0.0",
        "brainscore-vision==2.4.2",
        "brainscore-core==2.5.0",  # its metadata contract validates exported plugins
        "packaging",
        "topoloss==0.0.2",
        "numpy<2",
        "xarray",
        "pandas",
        "safetensors",
        "tqdm",
        "matplotlib",
        "pyyaml",
        "ruamel.yaml",
        "huggingface_hub",
    ],
    extras_require={"test": ["pytest", "pytest-check"]},
    entry_points={"console_scripts": ["tdsnn-train = tdsnn.training.cli:main", "tdsnn-score = harness.score:main",
                                        "tdsnn-sweep = harness.sweep:main"]},
)
