from setuptools import find_packages, setup

setup(
    name="tdsnn",
    version="0.1.0",
    description="Topographic Deep Spiking Neural Networks (TDSNNs) with a Brain-Score plugin and benchmark harness",
    python_requires=">=3.11",
    packages=find_packages(include=["tdsnn", "tdsnn.*", "brainscore_plugin", "brainscore_plugin.*",
                                    "harness", "harness.*"]),
    install_requires=[
        "torch>=2.6",
        "torchvision",
        "spikingjelly==2.0.0",
        "brainscore-vision==2.4.2",
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
    entry_points={"console_scripts": ["tdsnn-train = tdsnn.train:main"]},
)
