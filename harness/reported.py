"""Values reported by the TDSNN paper (arXiv 2508.04270; ImageNet, ResNet-18 family), as
recorded in METHOD.md §6. Shown beside measured tables, always labelled "reported"."""

SOURCE = "reported (TDSNN paper, ImageNet)"

#: model -> column -> value (Brain-Score per region, ImageNet top-1 %).
BRAIN_SCORES = {
    "ResNet18 (ANN)": {"V1": 0.6913, "V2": 0.3038, "V4": 0.2346, "IT": 0.5953},
    "TopoNet-ResNet18": {"V1": 0.7116, "V2": 0.3038, "V4": 0.2923, "IT": 0.5723},
    "TDANN": {"V1": 0.6932, "V2": 0.1775, "V4": 0.2792, "IT": 0.4259},
    "SResNet18 (T=4)": {"accuracy": 58.49, "V1": 0.6823, "V2": 0.3079, "V4": 0.3970, "IT": 0.7102},
    "TSResNet18": {"accuracy": "58.21 (α50 β0) … 58.72 (α10 β90)", "V1": 0.6845, "V2": 0.3021, "V4": 0.3886,
                   "IT": 0.7127},
}

#: Further reported findings, one line each.
NOTES = (
    "TopoNet-ResNet18 top-1 is about 3 points below its non-topographic baseline.",
    "V1 orientation smoothness: 0.57 non-topographic → 0.76 topographic (TSResNet18, α = β = 0.5).",
    "CIFAR-100 top-1: 73.01 (SResNet18) vs 73.97 (TSResNet18, α = β = 0.5).",
    "Robust accuracy, TSResNet18 vs SResNet18: noise 25.8 vs 24.5, FGSM 24.4 vs 23.6, PGD 10.7 vs 9.97, "
    "masking 21.0 vs 20.8 (attack strengths not stated).",
)
