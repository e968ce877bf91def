"""The YAML config, as pydantic models.

Sections: ``data``, ``model``, ``loss``, ``optimizer``, ``scheduler``
(optional), ``train`` and ``output``. Every model forbids unknown keys (a typo
is an error, never a silent default) and is strict about types (the string
"0.1" does not become a number). Layers, datasets, optimisers and schedulers
are discriminated unions on ``type``, so an error points at one variant and
one field.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Probability = Annotated[float, Field(ge=0, le=1)]
# Seeds are 32-bit unsigned integers (what np.random.seed takes); a negative
# one would otherwise reach NumPy at training time and fail there.
Seed = Annotated[int, Field(ge=0, lt=2**32)]


class Strict(BaseModel):
    # .inf and .nan are floats in YAML; no setting of a config takes them.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def _type_shorthand(value):
    """Let `loss: mse` stand for `loss: {type: mse}`."""
    return {"type": value} if isinstance(value, str) else value


# --------------------------------------------------------------------- data


class SplitConfig(Strict):
    """Fractions of the samples in each split; they must sum to 1.

    ``folds``, ``fold`` and ``repeat`` are set by ``micrograd cv`` (through
    overrides), not written in configs: the test split stays the plain one, the
    train+val samples are cut into ``folds`` stratified folds (seeded by the
    data seed + ``repeat``), fold ``fold`` validates and the others train.
    """

    train: Probability = 0.8
    val: Probability = 0.1
    test: Probability = 0.1
    folds: Optional[Annotated[int, Field(ge=2)]] = None
    fold: Optional[Annotated[int, Field(ge=0)]] = None
    repeat: Annotated[int, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _sum_to_one(self):
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must be 1, got {total:g}")
        if self.train == 0:
            raise ValueError("the train fraction must be above 0")
        if (self.folds is None) != (self.fold is None):
            raise ValueError("folds and fold go together (cross-validation sets both)")
        if self.folds is not None and self.fold >= self.folds:
            raise ValueError(f"fold is 0..{self.folds - 1} for {self.folds} folds, "
                             f"got {self.fold}")
        if self.folds is None and self.repeat:
            raise ValueError("repeat applies to cross-validation folds (set folds and fold)")
        return self

    def fractions(self):
        from micrograd.data.splits import Fractions

        return Fractions((self.train, self.val, self.test), self.folds, self.fold, self.repeat)


class SyntheticData(Strict):
    type: Literal["synthetic"]
    kind: Literal["linear", "blobs", "moons"] = "linear"
    n: Optional[PositiveInt] = None
    slope: float = 2.0
    intercept: float = 0.0
    noise: NonNegFloat = 0.0
    centers: Annotated[int, Field(ge=2)] = 2
    std: PositiveFloat = 1.0
    standardize: bool = False
    splits: SplitConfig = SplitConfig(train=0.8, val=0.2, test=0.0)
    seed: Seed = 0


class OutlierConfig(Strict):
    """``data.outliers`` of a CSV: bounds per column fitted on the train split."""

    method: Literal["iqr", "zscore", "mad"] = "iqr"
    action: Literal["clip", "drop"] = "clip"
    factor: Optional[PositiveFloat] = None  # None: 1.5 (iqr), 3 (zscore), 3.5 (mad)
    columns: Optional[list[str]] = None  # None: every numeric feature column
    target: bool = False


class SelectConfig(Strict):
    """``data.select`` of a CSV: feature selection on the encoded train features."""

    variance_threshold: Optional[NonNegFloat] = None
    k: Optional[PositiveInt] = None
    score: Literal["auto", "correlation", "mutual_info", "anova_f", "chi2"] = "auto"


class CSVData(Strict):
    type: Literal["csv"]
    path: str
    target: str
    task: Literal["auto", "regression", "classification"] = "auto"
    features: Optional[list[str]] = None
    categorical: Optional[list[str]] = None
    numeric: Optional[list[str]] = None
    drop: Optional[list[str]] = None
    impute_numeric: Literal["mean", "median", "most_frequent", "constant"] = "mean"
    impute_categorical: Literal["most_frequent", "constant"] = "most_frequent"
    fill_value: Optional[Union[float, str]] = None
    scaling: Literal["standard", "minmax", "robust", "none"] = "standard"
    log_target: bool = False
    # Before splitting: exact repeats (features and target) and conflicts (same
    # features, another target); 'keep' leaves today's splits unchanged, and
    # equal features with different targets are ordinary noise in regression.
    duplicates: Literal["keep", "drop"] = "keep"
    conflicts: Literal["keep", "report", "drop"] = "keep"
    outliers: Optional[OutlierConfig] = None
    select: Optional[SelectConfig] = None
    splits: SplitConfig = SplitConfig()
    seed: Seed = 0


class TextData(Strict):
    type: Literal["text"]
    path: Union[str, list[str]]
    delimiter: str = "\t"
    has_header: bool = False
    lowercase: bool = True
    min_freq: PositiveInt = 1
    max_vocab: Optional[PositiveInt] = None
    vectorizer: Literal["bow", "binary", "tfidf", "ids"] = "tfidf"
    # ids: sentences as token ids padded or cut to this length (default: the
    # longest training sentence), for an embedding model
    max_length: Optional[PositiveInt] = None
    # word n-grams [min_n, max_n]: [1, 2] adds bigrams to the vocabulary
    ngram_range: Annotated[list[PositiveInt], Field(min_length=2, max_length=2)] = [1, 1]
    skip_bad_lines: bool = False
    # Before splitting: a sentence repeated with the same label (same tokens, as
    # the tokenizer sees them) is a duplicate; under different labels, a conflict.
    # 'keep' (as for CSV) leaves the splits as they were; 'drop' keeps no sentence
    # in two splits. A conflict is a labelling error: reported, not dropped.
    duplicates: Literal["keep", "drop"] = "keep"
    conflicts: Literal["keep", "report", "drop"] = "report"
    splits: SplitConfig = SplitConfig()
    seed: Seed = 0

    @field_validator("ngram_range")
    @classmethod
    def _ordered(cls, value: list[int]) -> list[int]:
        if value[0] > value[1]:
            raise ValueError(f"ngram_range is [min_n, max_n] with min_n <= max_n, got {value}")
        return value


class ImageData(Strict):
    # No root: the data folder ($MICROGRAD_DATA or the user's cache), downloading
    # what is missing unless download: false; an explicit root downloads only with
    # download: true. sample: true (mnist): the 3,000 digits shipped inside micrograd.
    type: Literal["mnist", "fashion_mnist"]
    root: Optional[str] = None
    download: Optional[bool] = None
    sample: bool = False
    mean: float = 0.5
    std: PositiveFloat = 0.5
    use_test_files: bool = True
    limit: Optional[PositiveInt] = None
    splits: SplitConfig = SplitConfig(train=0.9, val=0.1, test=0.0)
    seed: Seed = 0

    @model_validator(mode="after")
    def _sample_ships_inside(self):
        if self.sample and self.type != "mnist":
            raise ValueError("sample: true is the MNIST digits shipped inside micrograd; "
                             f"there is no {self.type} sample")
        if self.sample and (self.root is not None or self.download):
            raise ValueError("sample: true reads the digits shipped inside micrograd and "
                             "takes no root or download; leave sample out to read a folder")
        return self


DataConfig = Annotated[
    Union[SyntheticData, CSVData, TextData, ImageData], Field(discriminator="type")
]


# -------------------------------------------------------------------- model


class LinearLayer(Strict):
    type: Literal["linear"]
    out_features: PositiveInt
    in_features: Optional[PositiveInt] = None
    bias: bool = True


#: An int, or [height, width] (a kernel size, stride, padding or dilation per axis).
PositivePair = Union[PositiveInt, Annotated[list[PositiveInt], Field(min_length=2, max_length=2)]]
NonNegPair = Union[Annotated[int, Field(ge=0)],
                   Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=2, max_length=2)]]


class Conv2dLayer(Strict):
    """``padding`` also takes 'same' (the output keeps its height and width; stride 1)
    and 'valid' (none); ``groups`` must divide in_channels and out_channels."""

    type: Literal["conv2d"]
    out_channels: PositiveInt
    kernel_size: PositivePair
    in_channels: Optional[PositiveInt] = None
    stride: PositivePair = 1
    padding: Union[NonNegPair, Literal["same", "valid"]] = 0
    dilation: PositivePair = 1
    groups: PositiveInt = 1
    bias: bool = True
    padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros"


class MaxPoolLayer(Strict):
    type: Literal["maxpool2d"]
    kernel_size: PositivePair = 2
    stride: Optional[PositivePair] = None
    padding: NonNegPair = 0
    dilation: PositivePair = 1
    ceil_mode: bool = False


class AvgPoolLayer(Strict):
    type: Literal["avgpool2d"]
    kernel_size: PositivePair = 2
    stride: Optional[PositivePair] = None
    padding: NonNegPair = 0
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: Optional[PositiveInt] = None


class FlattenLayer(Strict):
    type: Literal["flatten"]


class ActivationLayer(Strict):
    type: Literal["relu", "sigmoid", "tanh"]


class SoftmaxLayer(Strict):
    type: Literal["softmax", "log_softmax"]
    dim: int = -1


class DropoutLayer(Strict):
    type: Literal["dropout"]
    p: Annotated[float, Field(ge=0, lt=1)] = 0.5


class BatchNormLayer(Strict):
    type: Literal["batchnorm1d", "batchnorm2d"]
    num_features: Optional[PositiveInt] = None
    eps: PositiveFloat = 1e-5
    momentum: Probability = 0.1


class EmbeddingLayer(Strict):
    """Token ids -> vectors. ``num_embeddings`` defaults to what the data implies (a
    text dataset with ``vectorizer: ids``: its vocabulary, padding and unknown ids)."""

    type: Literal["embedding"]
    embedding_dim: PositiveInt
    num_embeddings: Optional[PositiveInt] = None
    padding_idx: Optional[int] = None
    max_norm: Optional[PositiveFloat] = None


class EmbeddingBagLayer(Strict):
    """Token ids -> the mean (sum, max) of their vectors, padding left out."""

    type: Literal["embedding_bag"]
    embedding_dim: PositiveInt
    num_embeddings: Optional[PositiveInt] = None
    mode: Literal["mean", "sum", "max"] = "mean"
    padding_idx: Optional[int] = None
    max_norm: Optional[PositiveFloat] = None


LayerConfig = Annotated[
    Union[LinearLayer, Conv2dLayer, MaxPoolLayer, AvgPoolLayer, FlattenLayer, ActivationLayer,
          SoftmaxLayer, DropoutLayer, BatchNormLayer, EmbeddingLayer, EmbeddingBagLayer],
    Field(discriminator="type"),
]


class ModelConfig(Strict):
    """``input_shape`` is needed only when the data does not imply it."""

    input_shape: Optional[list[PositiveInt]] = None
    layers: Annotated[list[LayerConfig], Field(min_length=1)]


# --------------------------------------------------------------------- loss


class LossConfig(Strict):
    """``label_smoothing`` (cross_entropy only): PyTorch's, in [0, 1]."""

    type: Literal["mse", "l1", "cross_entropy", "bce", "bce_with_logits"]
    reduction: Literal["mean", "sum"] = "mean"
    label_smoothing: Optional[Probability] = None

    @model_validator(mode="after")
    def _smoothing_is_for_cross_entropy(self):
        if self.label_smoothing is not None and self.type != "cross_entropy":
            raise ValueError(f"label_smoothing is an option of cross_entropy, not of "
                             f"{self.type}")
        return self

    def options(self) -> dict:
        """The loss class's keyword arguments."""
        given = {"label_smoothing": self.label_smoothing}
        return {"reduction": self.reduction,
                **{k: v for k, v in given.items() if v is not None}}


# ---------------------------------------------------------------- optimizer


class SGDConfig(Strict):
    type: Literal["sgd"]
    lr: PositiveFloat = 0.01
    momentum: NonNegFloat = 0.0
    nesterov: bool = False
    weight_decay: NonNegFloat = 0.0


class AdamConfig(Strict):
    type: Literal["adam", "adamw"]
    lr: PositiveFloat = 1e-3
    betas: Annotated[list[Annotated[float, Field(ge=0, lt=1)]],
                     Field(min_length=2, max_length=2)] = [0.9, 0.999]
    eps: PositiveFloat = 1e-8
    weight_decay: Optional[NonNegFloat] = None  # adam: 0, adamw: 0.01 (PyTorch's defaults)
    amsgrad: bool = False


class RMSpropConfig(Strict):
    type: Literal["rmsprop"]
    lr: PositiveFloat = 0.01
    alpha: Probability = 0.99
    eps: PositiveFloat = 1e-8
    momentum: NonNegFloat = 0.0
    centered: bool = False
    weight_decay: NonNegFloat = 0.0


OptimizerConfig = Annotated[
    Union[SGDConfig, AdamConfig, RMSpropConfig], Field(discriminator="type")
]


# ---------------------------------------------------------------- scheduler


class StepLRConfig(Strict):
    type: Literal["step"]
    step_size: PositiveInt
    gamma: PositiveFloat = 0.1


class ExponentialLRConfig(Strict):
    type: Literal["exponential"]
    gamma: PositiveFloat


class CosineLRConfig(Strict):
    type: Literal["cosine"]
    t_max: Optional[PositiveInt] = None  # default: train.epochs
    eta_min: NonNegFloat = 0.0


class PlateauLRConfig(Strict):
    type: Literal["plateau"]
    factor: Annotated[float, Field(gt=0, lt=1)] = 0.1
    patience: Annotated[int, Field(ge=0)] = 10
    min_lr: NonNegFloat = 0.0


SchedulerConfig = Annotated[
    Union[StepLRConfig, ExponentialLRConfig, CosineLRConfig, PlateauLRConfig],
    Field(discriminator="type"),
]


# -------------------------------------------------------------------- train


class TrainConfig(Strict):
    epochs: PositiveInt = 10
    batch_size: PositiveInt = 32
    seed: Seed = 0
    shuffle: bool = True
    clip_grad_norm: Optional[PositiveFloat] = None
    clip_grad_value: Optional[PositiveFloat] = None
    early_stopping_patience: Optional[PositiveInt] = None
    val_every: PositiveInt = 1
    # Write checkpoint.npz every N epochs; by default every 30 s and after the last epoch.
    checkpoint_every: Optional[PositiveInt] = None
    # Which validation figure picks best.npz and drives early stopping. Each
    # knows its direction (micrograd.metrics.GOAL): loss, mse, rmse and mae go
    # down; accuracy, f1_macro and r2 go up. Keras's 'val_loss' spelling is accepted.
    monitor: str = "loss"
    # Where the epochs' figures go: metrics.csv is always written (runs and
    # runs diff read it), so "csv" may be listed or not; "tensorboard" adds
    # events in <run>/tensorboard/ (the tensorboard extra).
    loggers: list[Literal["csv", "tensorboard"]] = ["csv"]
    # TensorBoard weight and gradient histograms every N epochs; 0: none.
    histogram_every: Annotated[int, Field(ge=0)] = 10
    # Start from these weights (fine-tuning): a checkpoint .npz or a .safetensors
    # file (micrograd export's); only the weights, not the optimiser's state.
    init_from: Optional[str] = None

    @field_validator("monitor")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        import difflib

        from micrograd.metrics import GOAL

        name = value.removeprefix("val_")
        if name not in GOAL:
            close = difflib.get_close_matches(name, list(GOAL), n=1, cutoff=0.6)
            raise ValueError(f"unknown metric {value!r}"
                             + (f" — did you mean '{close[0]}'?" if close else "")
                             + f" (expected one of: {', '.join(GOAL)})")
        return name


class OutputConfig(Strict):
    dir: Optional[str] = None


# ------------------------------------------------------------------ config


class Config(Strict):
    """A whole training run."""

    data: DataConfig
    model: ModelConfig
    loss: LossConfig
    optimizer: OptimizerConfig
    scheduler: Optional[SchedulerConfig] = None
    train: TrainConfig = TrainConfig()
    output: OutputConfig = OutputConfig()

    @field_validator("loss", "optimizer", "scheduler", mode="before")
    @classmethod
    def _shorthand(cls, value: Any):
        return _type_shorthand(value)
