"""What the papers claim, as data, with ``None`` wherever a figure could not be obtained.

Reproduction pages set these beside our measurements. A claim's ``value`` is the paper's
own wording of the number (or ``None`` when it is unknown), and ``numbers`` holds the same
figures as plain floats where they exist, so a page can compute differences from them.
Sources: the project's specs (docs of the synaptic and depth methods), which record what
could and could not be read from each paper.
"""

from __future__ import annotations

from dataclasses import dataclass, field

UNKNOWN = "not reported / unknown"


@dataclass(frozen=True)
class Claim:
    """One figure a paper reports (or would report, where it is unknown).

    Attributes:
        setting: model and data set, e.g. ``LeNet-300-100 on MNIST``.
        quantity: what is measured, e.g. ``connections pruned``.
        value: the paper's figure in its own terms, or None when unknown.
        numbers: the same figure as floats keyed by name (fractions, not percent).
        note: a caveat that belongs next to the figure.
    """

    setting: str
    quantity: str
    value: str | None
    numbers: dict[str, float] = field(default_factory=dict)
    note: str = ""

    @property
    def shown(self) -> str:
        """``value``, or :data:`UNKNOWN` when the paper's figure could not be obtained."""
        return self.value if self.value is not None else UNKNOWN


@dataclass(frozen=True)
class Paper:
    """A paper and its claims.

    Attributes:
        key: short name used on the command line, e.g. ``zhao2021``.
        citation: authors, title, venue, year.
        doi: the DOI (or None).
        claims: its figures.
        caveat: what could not be obtained from it, said once for the whole page.
    """

    key: str
    citation: str
    doi: str | None
    claims: tuple[Claim, ...]
    caveat: str = ""


ZHAO2021 = Paper(
    key="zhao2021",
    citation="F. Zhao, Y. Zeng, \"Dynamically Optimizing Network Structure Based on Synaptic Pruning in the Brain\", "
             "Frontiers in Systems Neuroscience 15:620558 (2021)",
    doi="10.3389/fnsys.2021.620558",
    caveat="Only the abstract's claims could be obtained; the paper's formulas, thresholds, architectures, schedules "
           "and per-experiment tables are unknown. Our pruning rule is our own formulation of the described idea, so "
           "our numbers test the idea, not the paper's exact method.",
    claims=(
        Claim("MNIST, Fashion-MNIST, CIFAR-10 (compact networks)", "connections pruned",
              "59–90% (range over the experiments)", {"low": 0.59, "high": 0.90},
              "which experiment reaches which share is unknown"),
        Claim("same network trained without pruning", "test accuracy with pruning vs without",
              "higher with pruning (size of the gain unknown)"),
        Claim("same network trained without pruning", "learning speed", "faster with pruning (measure unknown)"),
        Claim("MNIST", "test accuracy", None),
        Claim("Fashion-MNIST", "test accuracy", None),
        Claim("CIFAR-10", "test accuracy", None),
    ),
)

HAN2015 = Paper(
    key="han2015",
    citation="S. Han, J. Pool, J. Tran, W. Dally, \"Learning both Weights and Connections for Efficient Neural "
             "Networks\", NeurIPS 2015 (magnitude pruning, prune then retrain)",
    doi=None,
    claims=(
        Claim("LeNet-300-100 on MNIST", "weights pruned; test error dense → pruned", "92%; 1.64% → 1.59%",
              {"pruned": 0.92, "error_dense": 0.0164, "error_pruned": 0.0159}),
        Claim("LeNet-5 on MNIST", "weights pruned; test error dense → pruned", "92%; 0.80% → 0.77%",
              {"pruned": 0.92, "error_dense": 0.0080, "error_pruned": 0.0077}),
    ),
)

ZHU2017 = Paper(
    key="zhu2017",
    citation="M. Zhu, S. Gupta, \"To prune, or not to prune: exploring the efficacy of pruning for model "
             "compression\", arXiv:1710.01878 (2017) (magnitude pruning on a cubic sparsity schedule)",
    doi=None,
    claims=(),
)

CAMACHO2022 = Paper(
    key="camacho2022",
    citation="J. D. Camacho, C. Villaseñor, C. Lopez-Franco, N. Arana-Daniel, \"Neuroplasticity-Based Pruning Method "
             "for Deep Convolutional Neural Networks\", Applied Sciences 12(10):4945 (2022)",
    doi="10.3390/app12104945",
    caveat="The paper's base models, data sets, schedules and result tables could not be obtained; every figure of "
           "its own is unknown. The translator (pooling + 1x1 conv + ReLU) follows the authors' later work and code.",
    claims=(
        Claim("base models and data sets", "which networks were cut", None,
              note="the authors' code hints at VGG and MobileNet; keywords say transfer learning"),
        Claim("after cut and recovery", "test accuracy vs the uncut model", None),
        Claim("after cut and recovery", "parameters / MACs removed", None),
        Claim("after cut and recovery", "measured speed-up", None),
    ),
)

TORCH_PRUNING = Paper(
    key="torch-pruning",
    citation="G. Fang et al., \"DepGraph: Towards Any Structural Pruning\", CVPR 2023 (the Torch-Pruning library)",
    doi=None,
    claims=(
        Claim("ResNet-56 on CIFAR-10", "accuracy base → pruned; MACs fewer", "93.53% → 93.64%; 2.57x",
              {"accuracy_base": 0.9353, "accuracy_pruned": 0.9364, "macs_ratio": 2.57}),
        Claim("ResNet-50 on ImageNet", "measured speed-up; MACs fewer", "2.19x; 3.85x",
              {"speedup": 2.19, "macs_ratio": 3.85}, "latency gains fall well below the MAC ratio"),
    ),
)

LAYER_PRUNING = Paper(
    key="layer-pruning",
    citation="Layer-pruning literature on CIFAR-10 (fusible residual convolutional block method)",
    doi=None,
    claims=(
        Claim("ResNet-110 on CIFAR-10", "FLOPs removed; accuracy change", "65.5%; −0.13 pt",
              {"flops_removed": 0.655, "accuracy_change": -0.0013}),
    ),
)

PAPERS: dict[str, Paper] = {p.key: p for p in (ZHAO2021, HAN2015, ZHU2017, CAMACHO2022, TORCH_PRUNING,
                                                LAYER_PRUNING)}
