"""Casting a 16-bit checkpoint to the dtype that runs, paying only for the layers a forward reaches.

Why: a converted cache holds 16-bit weights, and a CPU without AMX runs float32. The cast itself is cheap (a
fraction of a second for the 0.5B); what costs is the new float32 memory the kernel hands out page by page
(about 3 s for the 0.5B's 2.5 GB on this project's machines). Scoring never reaches the output head (the scorer
runs the decoder only) nor the layers after the deepest selected head (it stops there), which are 36% of the
0.5B's weights. So the decoder layers and the output head are cast on their first forward, each once, and the
rest (embeddings, final norm: what ``model.dtype`` and attention masks read) at once. A model that generates
(:class:`~qrhead_integrations.reader.Reader`) casts everything on its first token, which is no slower than the
load would have been.

The cast of a module happens under ``torch.inference_mode(False)`` (the weights stay ordinary tensors even when
the first forward runs in inference mode) and under a lock (two threads' first forwards cast once).
"""

from __future__ import annotations

import threading

import torch

from .capture import decoder_of
from .errors import UnsupportedModelError

_LOCK = threading.Lock()


_HANDLE = "_qrhead_deferred_cast"
"""Attribute of a module whose cast waits for its first forward: the hook's handle."""


def _cast_direct(module: torch.nn.Module, dtype: torch.dtype) -> None:
    """Cast ``module``'s own floating parameters (not its children's) to ``dtype``, in place.

    Buffers are left as built: the model's own code made them (rotary frequencies are float32 whatever the
    weights), exactly as ``from_pretrained(dtype=...)`` leaves them.
    """
    with torch.inference_mode(False), torch.no_grad():
        for param in module.parameters(recurse=False):
            if param.is_floating_point() and param.dtype != dtype:
                param.data = param.data.to(dtype)


def _cast_tree(module: torch.nn.Module, dtype: torch.dtype) -> None:
    for sub in module.modules():
        _cast_direct(sub, dtype)


def _deferred_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The decoder layers and the output head: the parts a scoring forward may never reach.

    The layers are the ones the scorer runs and stops in (:func:`~qrhead_integrations.capture.decoder_of`).
    """
    deferred: list[torch.nn.Module] = []
    try:
        layers = decoder_of(model).layers  # type: ignore[arg-type]  # any module with decoder layers
    except UnsupportedModelError:
        layers = None
    if isinstance(layers, torch.nn.ModuleList):
        deferred.extend(layers)
    get_output = getattr(model, "get_output_embeddings", None)
    head = get_output() if callable(get_output) else None
    get_input = getattr(model, "get_input_embeddings", None)
    embeddings = get_input() if callable(get_input) else None
    tied = (
        isinstance(head, torch.nn.Module)
        and isinstance(embeddings, torch.nn.Module)
        and any(p is q for p in head.parameters() for q in embeddings.parameters())
    )
    if isinstance(head, torch.nn.Module) and not tied:
        deferred.append(head)
    return deferred


def cast_weights(model: torch.nn.Module, dtype: torch.dtype, *, defer: bool = True) -> None:
    """Cast ``model``'s floating weights to ``dtype``; with ``defer``, the layers and head on first use.

    Args:
        model: a Hugging Face causal LM (any ``torch.nn.Module`` works; without decoder layers nothing is deferred).
        dtype: the dtype that runs.
        defer: cast the decoder layers and an untied output head in a forward pre-hook, once, instead of now.
    """
    deferred = _deferred_modules(model) if defer else []
    inside = {id(sub) for module in deferred for sub in module.modules()}
    for sub in model.modules():
        if id(sub) not in inside:
            _cast_direct(sub, dtype)
    for module in deferred:
        if pending(module, dtype):
            _defer(module, dtype)


class _CastOnFirstUse:
    """A forward pre-hook that casts the module it is called on.

    That module, not the one it was registered on: a deep or pickled copy of the model carries the hook and must
    cast itself. A class rather than a closure, so that the model still pickles.
    """

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype

    def __call__(self, module: torch.nn.Module, _: object) -> None:
        with _LOCK:
            _finish(module, self.dtype)


def _defer(module: torch.nn.Module, dtype: torch.dtype) -> None:
    setattr(module, _HANDLE, module.register_forward_pre_hook(_CastOnFirstUse(dtype)))


def _finish(module: torch.nn.Module, dtype: torch.dtype) -> None:
    """Cast ``module`` (whole), then drop its hook; the caller holds the lock.

    In that order: a thread whose forward reaches the module meanwhile either waits in the hook for the lock or
    finds the hook gone and the weights cast, never a half-cast module.
    """
    _cast_tree(module, dtype)
    handle = module.__dict__.pop(_HANDLE, None)
    if handle is not None:
        handle.remove()


def cast_pending(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Cast whatever :func:`cast_weights` deferred, now (before quantising, moving or saving the model)."""
    with _LOCK:
        for module in list(model.modules()):
            if _HANDLE in module.__dict__:
                _finish(module, dtype)
        _cast_tree(model, dtype)


def pending(model: torch.nn.Module, dtype: torch.dtype) -> int:
    """How many floating parameter elements are not yet ``dtype`` (0 once everything has been cast)."""
    return sum(p.numel() for p in model.parameters() if p.is_floating_point() and p.dtype != dtype)
