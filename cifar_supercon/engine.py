"""What training and the LR range test share: device, precision, data, model, optimizer, step.

`build(cfg)` turns a config into a `Setup`; `training.fit` and `lr_finder.run` both start from it,
so the range test runs under exactly the training conditions (batch size, augmentation, weight
decay, precision).
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import os
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from . import config as config_lib
from . import memory
from . import schedule as schedule_lib
from .config import Config
from .data import Dataset, load_dataset
from .errors import ValueRefused, describe
from .loader import EvalLoader, Normalizer, TrainLoader
from .model import ResNet9

Log = Callable[[str], None]


class Stateful(Protocol):
    def state_dict(self) -> Any: ...
    def load_state_dict(self, state: Any) -> Any: ...


@contextlib.contextmanager
def restored(*objects: Stateful) -> Iterator[None]:
    """Run a block, then put every object's state (and the global RNGs) back bit-for-bit."""
    saved = [copy.deepcopy(obj.state_dict()) for obj in objects]
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        for obj, state in zip(objects, saved, strict=True):
            obj.load_state_dict(state)
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)


def cpu_model() -> str:
    """The processor's marketing name (Linux), else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    """What ran it, for logs and summaries: the GPU's name, or the CPU's and its threads."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f"cpu: {cpu_model()}, {threads} thread{'' if threads == 1 else 's'}"


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueRefused(
            "train.device",
            f"cuda, but no CUDA GPU is available to torch {torch.__version__}; use --device cpu "
            "(slow) or --device auto (a resume may change it)",
        )
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """The autocast dtype: bf16 where the GPU has it, else fp16; fp32 on the CPU."""
    if precision == "auto":
        if device.type != "cuda":
            return torch.float32
        # Native bf16 only (Ampere and newer): T4/V100 emulate it slowly; fp16 + a scaler is fast.
        native_bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
        return torch.bfloat16 if native_bf16 else torch.float16
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def batch_dtype(device: torch.device, dtype: torch.dtype) -> torch.dtype:
    """Batches come in the autocast dtype on the GPU (half the bytes, no cast kernel); fp32 on
    the CPU, whose convolutions are fastest in fp32."""
    return dtype if device.type == "cuda" else torch.float32


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def set_determinism(seed: int, deterministic: bool) -> None:
    """Seed every generator once; optionally ask for deterministic kernels."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS reproducibility
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    # Deterministic mode also fills every new allocation with NaN (about 200 fill kernels per
    # step on CUDA); our kernels never read memory they did not write, so skip the fills.
    torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic  # autotuning picks kernels by timing
    torch.manual_seed(seed)


def build_model(cfg: Config, device: torch.device, num_classes: int) -> ResNet9:
    """One output per class of the data (10 for CIFAR-10; an image folder may have more)."""
    model = ResNet9(cfg.model.width, num_classes, cfg.model.logit_scale)
    memory_format = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    return model.to(device=device, memory_format=memory_format)


def build_optimizer(model: nn.Module, cfg: Config) -> torch.optim.SGD:
    """SGD; lr and momentum are set by the schedule before every step."""
    decay, no_decay = [], []
    for param in model.parameters():
        # BatchNorm scales/shifts and biases are the 1-d parameters.
        (no_decay if param.ndim <= 1 and not cfg.optim.decay_norm_and_bias else decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.optim.weight_decay, "decays": True}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, "decays": False})
    on_cuda = next(model.parameters()).is_cuda
    return torch.optim.SGD(
        groups,
        lr=cfg.schedule.lr_max if isinstance(cfg.schedule.lr_max, float) else 0.0,
        momentum=cfg.schedule.momentum_max,
        nesterov=cfg.optim.nesterov,
        # One fused kernel for the whole update on the GPU; the multi-tensor path elsewhere.
        fused=True if on_cuda else None,
        foreach=None if on_cuda else True,
    )


def set_weight_decay(optimizer: torch.optim.Optimizer, weight_decay: float) -> None:
    for group in optimizer.param_groups:
        if group.get("decays", True):
            group["weight_decay"] = weight_decay


def soft_cross_entropy(logits: torch.Tensor, y: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Mean cross-entropy against (1 - smoothing) one-hot + smoothing / classes: equal to
    F.cross_entropy(label_smoothing=smoothing), but its backward is elementwise, where
    nll_loss's scatter is nondeterministic on CUDA."""
    log_p = F.log_softmax(logits, dim=1)
    classes = logits.shape[1]
    target = F.one_hot(y, classes).to(log_p.dtype) * (1 - smoothing) + smoothing / classes
    return -(target * log_p).sum(dim=1).mean()


class TrainStep:
    """One optimizer update: forward (autocast), cross-entropy, backward, step.

    Returns the batch's mean loss and number of correct predictions as device tensors, so the
    caller can sum them without waiting for the GPU.
    """

    def __init__(
        self,
        forward: nn.Module,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        dtype: torch.dtype,
        label_smoothing: float = 0.0,
    ) -> None:
        self.forward, self.optimizer = forward, optimizer
        self.device, self.dtype = device, dtype
        self.label_smoothing = label_smoothing
        # fp16 needs loss scaling to keep small gradients; bf16 and fp32 do not.
        self.scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with autocast(self.device, self.dtype):
            logits = self.forward(x)
        loss = soft_cross_entropy(logits.float(), y, self.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach(), (logits.detach().argmax(dim=1) == y).sum()


@dataclass(frozen=True)
class EvalResult:
    loss: float
    accuracy: float  # a fraction
    predictions: torch.Tensor  # (N,) int64 on the CPU
    labels: torch.Tensor


@torch.no_grad()
def evaluate(
    forward: nn.Module,
    loader: EvalLoader,
    device: torch.device,
    dtype: torch.dtype,
    tta_flip: bool = False,
) -> EvalResult:
    """Mean loss and accuracy over the loader (BatchNorm in eval mode, restored afterwards)."""
    was_training = forward.training
    forward.eval()
    loss_sum = torch.zeros((), device=device)
    predictions, labels = [], []
    for x, y in loader:
        with autocast(device, dtype):
            logits = forward(x)
            if tta_flip:
                logits = (logits + forward(x.flip(3))) / 2
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
        predictions.append(logits.argmax(dim=1))
        labels.append(y)
    forward.train(was_training)
    predicted, truth = torch.cat(predictions).cpu(), torch.cat(labels).cpu()
    n = len(truth)
    return EvalResult(loss_sum.item() / n, (predicted == truth).sum().item() / n, predicted, truth)


def confusion_matrix(result: EvalResult, num_classes: int) -> list[list[int]]:
    """matrix[true class][predicted class] = number of test images."""
    flat = result.labels * num_classes + result.predictions
    counts = torch.bincount(flat, minlength=num_classes * num_classes)
    return counts.view(num_classes, num_classes).tolist()


@dataclass
class Setup:
    cfg: Config
    device: torch.device
    dtype: torch.dtype  # autocast precision
    dataset: Dataset
    normalizer: Normalizer
    train_loader: TrainLoader
    test_loader: EvalLoader
    model: ResNet9  # the module whose state is saved
    forward: nn.Module  # what runs: the model, or its torch.compile'd wrapper
    compiled: bool
    optimizer: torch.optim.SGD
    train_step: TrainStep
    started: float  # time.perf_counter() when building began: the run's wall clock starts here

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_loader)


# torch's own choice at start-up (the cores, or OMP_NUM_THREADS): what `cpu_threads: null` means.
DEFAULT_THREADS = torch.get_num_threads()


def set_cpu_threads(threads: int | None) -> None:
    """torch's CPU threads: `threads`, or torch's default when None.

    More threads than the machine's logical CPUs only oversubscribe them, and far more break
    the process (libgomp fails to create 20,000 threads; 100,000 crash it). The bound is this
    machine's, so it is checked here, where the threads are applied (before a run directory
    exists), not in the config: the same config may run, or resume, on a larger machine.
    """
    cpus = os.cpu_count() or 1
    if threads is not None and threads > cpus:
        raise ValueRefused(
            "train.cpu_threads",
            f"{threads} is more than this machine's {cpus} logical CPUs; give at most {cpus}, "
            f"or null for torch's default ({DEFAULT_THREADS})",
        )
    torch.set_num_threads(threads or DEFAULT_THREADS)


def build(cfg: Config, log: Log = lambda _: None) -> Setup:
    started = time.perf_counter()
    with config_lib.blamed(cfg):  # what this machine or the data refuses names its source
        device = resolve_device(cfg.train.device)
        set_cpu_threads(cfg.train.cpu_threads)
        dtype = resolve_precision(cfg.train.precision, device)
        set_determinism(cfg.seed, cfg.train.deterministic)
        dataset = load_dataset(cfg.data, cfg.seed, log)
        schedule_lib.check_batch_size(cfg.train.batch_size, len(dataset.train))
    # Before the loaders copy the data to the device and the model allocates: a step that cannot
    # fit stops here with the keys to change, not by the kernel's OOM killer without a word.
    memory.check_fits(
        cfg.model.width,
        len(dataset.classes),
        cfg.train.batch_size,
        dtype != torch.float32,
        device,
    )
    normalizer = Normalizer.fit(dataset.train.images)
    layout = {"dtype": batch_dtype(device, dtype), "channels_last": cfg.train.channels_last}
    train_loader = TrainLoader(
        dataset.train,
        cfg.train.batch_size,
        cfg.data,
        normalizer,
        cfg.seed,
        device,
        drop_last=cfg.data.drop_last,
        **layout,
    )
    test_loader = EvalLoader(dataset.test, cfg.train.eval_batch_size, normalizer, device, **layout)
    model = build_model(cfg, device, len(dataset.classes))
    compiled = cfg.train.compile is True or (cfg.train.compile == "auto" and device.type == "cuda")
    forward: nn.Module = (
        torch.compile(model, mode=cfg.train.compile_mode) if compiled else model  # type: ignore[assignment]
    )
    optimizer = build_optimizer(model, cfg)
    step = TrainStep(forward, optimizer, device, dtype, cfg.train.label_smoothing)
    return Setup(
        cfg, device, dtype, dataset, normalizer, train_loader, test_loader, model, forward,
        compiled, optimizer, step, started,
    )  # fmt: skip


WARM_UP_STEPS = 3  # compile the training graph, then run it twice more (autotuning, allocator)


def warm_up(setup: Setup, log: Log = lambda _: None) -> float:
    """Compile and autotune before the training clock starts; returns the seconds it took.

    A few training steps and one pass over the test set (which compiles the evaluation graph and
    its last, shorter batch), after which the model, optimizer, scaler, loader and RNGs are put
    back bit-for-bit: training then runs exactly as if this never happened. If compilation
    fails (no C compiler, an unsupported GPU), warns in one line and continues without it.
    Nothing to do for an eager model on the CPU.
    """
    if not setup.compiled and setup.device.type != "cuda":
        return 0.0
    start = time.perf_counter()
    step, loader = setup.train_step, setup.train_loader
    try:
        with restored(setup.model, setup.optimizer, step.scaler, loader):
            for x, y in itertools.islice(iter(loader), WARM_UP_STEPS):
                step(x, y)
            evaluate(setup.forward, setup.test_loader, setup.device, setup.dtype)
            if setup.cfg.train.tta_flip:  # the flipped batch is another graph input
                evaluate(setup.forward, setup.test_loader, setup.device, setup.dtype, True)
    except Exception as e:
        if not setup.compiled:
            raise
        log(f"warning: torch.compile failed ({describe(e)}); running eager")
        setup.forward = step.forward = setup.model
        setup.compiled = False
        return warm_up(setup, log) + time.perf_counter() - start
    if setup.device.type == "cuda":
        torch.cuda.synchronize(setup.device)
    return time.perf_counter() - start
