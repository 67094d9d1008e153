"""Every knob of a training run, in a module of its own so the CLI can show the defaults cheaply.

``agebatch.train`` (which needs TensorFlow) is imported only when training starts; the command line
reads its option defaults from here, so they are written once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SCHEDULES = ("plateau", "cosine")
AGE_HEADS = ("regression", "distribution")


@dataclass
class TrainConfig:
    """Every knob of a training run; the model card records all of them."""

    data_dir: str  # the first labelled source (see agebatch.sources for the kinds)
    more_data: tuple[str, ...] = ()  # further labelled sources trained on together with the first
    out_dir: str = "models"
    model_name: str = "agebatch.keras"
    image_size: int = 128
    batch_size: int = 64
    head_epochs: int = 2
    epochs: int = 30
    patience: int = 4
    test_split: float = 0.2
    val_split: float = 0.1
    seed: int = 42
    split_from: str | None = None  # reuse this split.csv (e.g. a second seed on the same test files)
    backbone_weights: str | None = "imagenet"
    alpha: float = 1.0
    head_learning_rate: float = 1e-3
    learning_rate: float = 1e-4
    schedule: str = "plateau"  # fine-tuning rate: "plateau" (cut on stalled validation) or "cosine" (to 1% over epochs)
    fine_tune_fraction: float = 1.0
    age_head: str = "regression"  # "distribution": a softmax over years trained from exact ages and bands
    age_sigma: float = 2.5  # distribution head: width in years of an exact age's soft label
    age_loss_weight: float = 0.05
    balance_gender: bool = True
    age_weight_power: float = 0.5
    dropout: float = 0.3
    color_jitter: float = 0.0  # random brightness/contrast strength in augmentation (0: off)
    max_images: int | None = None
    init_from: str | None = None  # continue from this saved training model (skips the heads phase)
    warm_start: str | None = None  # copy the layers this saved model shares with the new network (heads phase kept)
    teachers: tuple[str, ...] = ()  # distil: blend the labels with these saved models' averaged predictions
    teacher_weight: float = 0.5  # share of the teacher in the training targets (0: labels only)
    average_epochs: int = 0  # phase 3: average the weights of this many extra epochs (0: off)
    refit_age_head: bool = False  # last: refit the age head on frozen features, unweighted (kept if val improves)
    average_learning_rate: float = 3e-5
    calibrate: bool = True  # fit the age map and gender threshold on the validation split
    time_limit_minutes: float | None = None  # stop fine-tuning (keeping the best weights) after this
    cache_dir: str | None = None
    verbose: int | None = None  # None: a bar on a terminal, one line per epoch otherwise
    extra: dict = field(default_factory=dict)

    @property
    def sources(self) -> tuple[str, ...]:
        """Every labelled source of the run, the first one first."""
        return (str(self.data_dir), *map(str, self.more_data))

    def __post_init__(self) -> None:
        self.teachers = tuple(str(path) for path in self.teachers)
        self.more_data = tuple(str(path) for path in self.more_data)
        if self.age_head not in AGE_HEADS:
            raise ValueError(f"unknown age head {self.age_head!r}; choose one of {', '.join(AGE_HEADS)}")
        if self.age_head == "distribution" and self.teachers:
            raise ValueError("distillation (teachers) works with the regression age head only")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if not 0.0 <= self.teacher_weight <= 1.0:
            raise ValueError(f"teacher_weight must be between 0 and 1, got {self.teacher_weight}")
