"""Values reported by the TDSNN paper (arXiv 2508.04270; ImageNet, ResNet-18 family), as
recorded in docs/method.md §6. Shown beside measured tables, always labelled "reported"."""

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

#: TSResNet18 on ImageNet: STC loss strengths (α, β) -> V1 orientation smoothness.
V1_SMOOTHNESS = {(50, 50): 0.7674, (50, 0): 0.755, (10, 90): 0.6991}
#: V1 orientation smoothness of the non-topographic network on ImageNet.
V1_SMOOTHNESS_BASELINE = 0.57
#: TSResNet18 on ImageNet: (α, β) -> top-1 (%), for the settings whose accuracy the paper states.
ACCURACY = {(50, 0): 58.21, (10, 90): 58.72}

#: Further reported findings, one line each.
NOTES = (
    "TopoNet-ResNet18 top-1 is about 3 points below its non-topographic baseline.",
    f"V1 orientation smoothness: {V1_SMOOTHNESS_BASELINE} non-topographic → TSResNet18 "
    + "; ".join(f"{value} at (α, β) = ({a}, {b})" for (a, b), value in V1_SMOOTHNESS.items()) + ".",
    "CIFAR-100 top-1: 73.01 (SResNet18) vs 73.97 (TSResNet18, α = β = 0.5).",
    "Robust accuracy, TSResNet18 vs SResNet18: noise 25.8 vs 24.5, FGSM 24.4 vs 23.6, PGD 10.7 vs 9.97, "
    "masking 21.0 vs 20.8 (attack strengths not stated).",
)
