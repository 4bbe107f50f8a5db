"""tdsnn: Topographic Deep Spiking Neural Networks for modelling the primate ventral stream."""
from .checkpoint import save_model
from .registry import create_model, list_models, load_model, resolve

__version__ = "0.1.0"
__all__ = ["create_model", "list_models", "load_model", "resolve", "save_model", "__version__"]
