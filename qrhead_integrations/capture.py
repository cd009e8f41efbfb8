"""The one place that knows how attention is captured: selected heads only, inside the normal sdpa path.

Why not ``output_attentions=True``: that needs the eager implementation, which materialises every head's full
``T x T`` map for every layer (17 GiB at 4K tokens on SmolLM2) and is 4-7x slower. Instead we register an
attention function with ``transformers.AttentionInterface`` that

* calls the regular sdpa kernel for the layer's output (so the model computes exactly what it always does), and
* when a :class:`HeadRecorder` is active and the layer holds selected heads, recomputes
  ``softmax(q k^T * scale + mask)`` for **those heads and the last ``n_rows`` query rows only**, with the
  model's real (rotary-embedded, normalised) queries and keys, the model's own mask (causal, sliding window),
  logit soft-capping and attention sinks where the model uses them, and grouped-query head mapping.

The same name is registered in ``AttentionMaskInterface`` with the sdpa mask builder: without it transformers
passes no mask to a custom attention name and sliding-window layers silently lose their window.

The forward is cut inside the deepest selected layer, right after its keys/values are cached and its heads
recorded, by raising :class:`_StopForward` (a forward hook on that layer is the fallback for attention modules
without a ``layer_idx``): that layer's attention output and MLP, later layers, the final norm and the LM head
never run. Key/value caches are forked by sharing tensors (cache layers replace
their tensors on update rather than writing into them), so one prefix cache serves any number of tails.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import inspect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

import torch

from .errors import UnsupportedModelError
from .headset import HeadSet
from .packing import BatchPacking, Packing

__all__ = [  # the engine's capture API (Packing and BatchPacking live in .packing; re-exported for callers)
    "ATTENTION_NAME",
    "TAIL_BATCH_TOKENS",
    "AttentionCall",
    "BatchPacking",
    "BatchRecorder",
    "HeadRecorder",
    "Packing",
    "can_crop",
    "decoder_of",
    "empty_copy",
    "fork_cache",
    "new_cache",
    "prepare_model",
    "recording",
    "register_attention",
    "run_layers",
]

if TYPE_CHECKING:
    from transformers import PreTrainedModel
    from transformers.cache_utils import Cache

ATTENTION_NAME = "qrhead_sdpa"

_ACTIVE_RECORDER: contextvars.ContextVar[HeadRecorder | BatchRecorder | None] = contextvars.ContextVar(
    "qrhead_active_recorder", default=None
)


_ACTIVE_PACKING: contextvars.ContextVar[Packing | BatchPacking | None] = contextvars.ContextVar(
    "qrhead_active_packing", default=None
)
_STOP_LAYER: contextvars.ContextVar[int | None] = contextvars.ContextVar("qrhead_stop_layer", default=None)

TAIL_BATCH_TOKENS = 32_768
"""Most (batch × keys) positions per batched tail attention: bounds the broadcast prefix key/value copies that
batching tails makes, for long prompts with many queries."""


@dataclass(frozen=True)
class AttentionCall:
    """One call of a layer's attention function, as transformers makes it.

    What a recorder reads (the queries, keys, mask and options of the call) and what the packed kernels split
    into regular sdpa calls with the call's own options.

    Attributes:
        module: the attention module (its ``layer_idx`` names the layer).
        query: ``(batch, heads, q_len, dim)`` queries, rotary-embedded.
        key: ``(batch, kv_heads, k_len, dim)`` keys (cache included).
        value: the values, shaped as ``key``.
        mask: the layer's attention mask, if any.
        dropout: attention dropout (0 in inference).
        scaling: the logit scale (``None``: ``dim ** -0.5``).
        extra: the call's further keyword arguments (``softcap``, ``s_aux``...), passed on to sdpa as given.
    """

    module: torch.nn.Module
    query: torch.Tensor
    key: torch.Tensor
    value: torch.Tensor
    mask: torch.Tensor | None
    dropout: float
    scaling: float | None
    extra: dict[str, Any]

    def row(self, b: int, length: int) -> AttentionCall:
        """Batch row ``b``'s first ``length`` positions, unmasked (a row of a batch is masked on its own)."""
        return replace(
            self,
            query=self.query[b : b + 1, :, :length],
            key=self.key[b : b + 1, :, :length],
            value=self.value[b : b + 1, :, :length],
            mask=None,
        )

    def sdpa(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """The regular sdpa kernel on (parts of) this call's tensors, with its options: ``(b, len, heads, dim)``."""
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        out: torch.Tensor = sdpa_attention_forward(
            self.module, query, key, value, mask, dropout=self.dropout, scaling=self.scaling, **self.extra
        )[0]
        return out


class HeadRecorder:
    """Collects the selected heads' attention of the last ``n_rows`` query positions during one forward.

    The weights are summed over groups of those rows (callers divide by the number of query-part rows).

    Args:
        heads: the heads to record.
        n_rows: how many trailing query positions (the prompt's query part) to record.
        total_length: absolute length of the sequence after this forward (cache + new tokens); keys of a
            sliding-window layer cover only the last ``window`` positions and are right-aligned to this length.
        row_groups: ``(batch, groups, n_rows)`` 0/1 weights saying which recorded rows each output sums, e.g.
            the real (unpadded) rows of each tail in a right-padded batch, or the instruction rows and the
            query rows of one sequence kept apart. ``None``: one group of all rows, batch of one.
        packing: the layout of the packed sequence this recorder's rows belong to, when it is one row of a
            :class:`BatchPacking` (otherwise the active packing, if any, is used).
    """

    def __init__(
        self,
        heads: HeadSet,
        n_rows: int,
        total_length: int,
        row_groups: torch.Tensor | None = None,
        packing: Packing | None = None,
    ) -> None:
        if row_groups is not None and (row_groups.dim() != 3 or row_groups.shape[-1] != n_rows):
            raise ValueError(f"row_groups must have shape (batch, groups, {n_rows}), got {tuple(row_groups.shape)}")
        self.heads = heads
        self.n_rows = n_rows
        self.total_length = total_length
        self.row_groups = row_groups
        self.packing = packing
        self._by_layer, self._order, self._stacked_positions = _layout(heads.heads)
        self._per_layer: dict[int, torch.Tensor] = {}
        # Per forward, every recorded layer needs the same head indices on the device and the same packed mask:
        # built once (a host-to-device copy and a dozen small kernels per layer otherwise, issue #18).
        self._on_device: dict[tuple[int, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}
        self._masks: dict[tuple[Packing, int, torch.device], torch.Tensor] = {}

    def record(self, call: AttentionCall) -> None:
        """Record the selected heads of ``call``'s layer, if it holds any."""
        layer = getattr(call.module, "layer_idx", None)
        if layer is None or layer not in self._by_layer:
            return
        query, key, scaling, extra = call.query, call.key, call.scaling, call.extra
        head_idx, kv_idx = self._indices(layer, query.device, query.shape[1] // key.shape[1])
        q_len, k_len = query.shape[2], key.shape[2]
        rows = min(self.n_rows, q_len)
        q_sel = query[:, head_idx, q_len - rows :, :].float()  # (b, h, rows, d)
        k_sel = key[:, kv_idx].float()  # (b, h, K, d)
        scale = scaling if scaling is not None else q_sel.shape[-1] ** -0.5
        logits = torch.matmul(q_sel, k_sel.transpose(-1, -2)) * scale  # (b, h, rows, K)
        softcap = extra.get("softcap")
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        active = _ACTIVE_PACKING.get()
        packing = self.packing or (active if isinstance(active, Packing) else None)
        if packing is not None and k_len == packing.total_len:
            logits = logits.masked_fill(self._hidden(packing, packing.total_len - rows, logits.device), float("-inf"))
        else:
            logits = _apply_mask(logits, call.mask, q_len, k_len, rows)
        sinks = extra.get("s_aux")
        if sinks is not None:
            sink = sinks.to(logits.device).float()[head_idx].view(1, -1, 1, 1).expand(*logits.shape[:-1], 1)
            probs = torch.softmax(torch.cat([logits, sink], dim=-1), dim=-1)[..., :-1]
        else:
            probs = torch.softmax(logits, dim=-1)
        if self.row_groups is None:
            self._per_layer[layer] = probs.sum(dim=2, keepdim=True).transpose(1, 2)  # (b, 1, h, K)
        else:
            groups = self.row_groups[..., self.n_rows - rows :].to(probs)
            self._per_layer[layer] = torch.einsum("bgr,bhrk->bghk", groups, probs)

    def _indices(self, layer: int, device: torch.device, group: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``layer``'s recorded query-head indices and their key/value heads (``group`` query heads per kv head)."""
        found = self._on_device.get((layer, device))
        if found is None:
            head_idx = self._by_layer[layer].to(device)
            found = (head_idx, torch.div(head_idx, group, rounding_mode="floor"))
            self._on_device[(layer, device)] = found
        return found

    def _hidden(self, packing: Packing, first_row: int, device: torch.device) -> torch.Tensor:
        """The keys each recorded row of ``packing`` may not see (the negation of :meth:`Packing.allowed`)."""
        key = (packing, first_row, device)
        if key not in self._masks:
            self._masks[key] = ~packing.allowed(first_row, device)
        return self._masks[key]

    def collect(self) -> torch.Tensor:
        """``(batch, groups, n_heads, total_length)`` row-summed weights in head-set order.

        Positions a head could not see are 0.
        """
        missing = [layer for layer in self._by_layer if layer not in self._per_layer]
        if missing:
            raise RuntimeError(f"layer {missing[0]} was not captured: the forward stopped early or never ran it")
        parts = [self._per_layer[layer] for layer in self._by_layer]
        if all(part.shape[-1] == self.total_length for part in parts):
            # One concatenation and one gather instead of an indexed write per layer (issue #18: per call).
            stacked = torch.cat(parts, dim=2) if len(parts) > 1 else parts[0]
            return stacked.index_select(2, self._order.to(stacked.device))
        first = parts[0]
        out = first.new_zeros(*first.shape[:2], len(self.heads), self.total_length)
        start = 0
        for part in parts:
            count = part.shape[2]
            out[:, :, self._stacked_positions[start : start + count], self.total_length - part.shape[-1] :] = part
            start += count
        return out


@functools.lru_cache(maxsize=64)
def _layout(heads: tuple[tuple[int, int], ...]) -> tuple[dict[int, torch.Tensor], torch.Tensor, torch.Tensor]:
    """How a recorder lays out ``heads``.

    Per layer, its recorded head indices (in set order); for the heads stacked layer by layer, the gather back
    to set order and each one's position in the set. Cached (a recorder is built for every forward, issue #18):
    the tensors are shared by every recorder of the same heads and never written.
    """
    by_layer: dict[int, list[int]] = {}
    stacked: dict[int, list[int]] = {}
    for position, (layer, head) in enumerate(heads):
        by_layer.setdefault(layer, []).append(head)
        stacked.setdefault(layer, []).append(position)
    positions = torch.tensor([position for in_layer in stacked.values() for position in in_layer])
    order = torch.empty_like(positions)
    order[positions] = torch.arange(len(positions))
    return {layer: torch.tensor(idx) for layer, idx in by_layer.items()}, order, positions


class BatchRecorder:
    """Records a :class:`BatchPacking` forward.

    Row ``b`` of the batch goes to ``recorders[b]``, which sees only that row's real (unpadded) queries and keys.

    Args:
        recorders: one recorder per row of the batch.
    """

    def __init__(self, recorders: Sequence[HeadRecorder]) -> None:
        self.recorders = list(recorders)

    def record(self, call: AttentionCall) -> None:
        """Hand each row of ``call`` to its own recorder."""
        for b, recorder in enumerate(self.recorders):
            recorder.record(call.row(b, recorder.total_length))


def _apply_mask(logits: torch.Tensor, mask: torch.Tensor | None, q_len: int, k_len: int, rows: int) -> torch.Tensor:
    """Apply the layer's mask to the recorded rows; with no mask, sdpa's causal rule (bottom-right aligned)."""
    if mask is None:
        row_pos = torch.arange(q_len - rows, q_len, device=logits.device)[:, None] + (k_len - q_len)
        col_pos = torch.arange(k_len, device=logits.device)[None, :]
        return logits.masked_fill(col_pos > row_pos, float("-inf"))
    # Tails of a batch are right-padded and see the same prefix, so every batch element has the same mask.
    sub = mask[0, 0] if mask.dim() == 4 and mask.shape[1] == 1 else mask[0]
    sub = sub[..., -rows:, -k_len:]
    if sub.dtype == torch.bool:
        return logits.masked_fill(~sub, float("-inf"))
    return logits + sub.float()


def _qrhead_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: object,
) -> tuple[torch.Tensor, None]:
    call = AttentionCall(module, query, key, value, attention_mask, dropout, scaling, kwargs)
    recorder = _ACTIVE_RECORDER.get()
    if recorder is not None:
        recorder.record(call)
    stop = _STOP_LAYER.get()
    if stop is not None and getattr(module, "layer_idx", None) == stop:
        # The deepest needed layer: its keys/values are cached and its heads recorded; its attention output,
        # output projection and MLP feed only layers that never run.
        raise _StopForward
    packing = _ACTIVE_PACKING.get()
    if isinstance(packing, BatchPacking) and key.shape[2] == packing.width:
        return _batch_attention(call, packing), None
    if isinstance(packing, Packing) and packing.extra_lens and key.shape[2] == packing.total_len:
        return _packed_attention(call, packing), None
    return call.sdpa(query, key, value, attention_mask), None


def _packed_attention(call: AttentionCall, packing: Packing) -> torch.Tensor:
    """Sdpa for a packed sequence, never with an ``L x L`` mask.

    The causal part runs with the fast causal kernel, the further tails as right-padded batches over
    ``prefix + own tokens`` with a small explicit mask.
    """
    query, key, value = call.query, call.key, call.value
    main, prefix = packing.main_len, packing.prefix_len
    pieces = [call.sdpa(query[:, :, :main], key[:, :, :main], value[:, :, :main], None)]
    spans = packing.extra_spans()
    per_group = max(1, TAIL_BATCH_TOKENS // (prefix + max(packing.extra_lens)))
    for first in range(0, len(spans), per_group):
        group = spans[first : first + per_group]
        width = max(end - start for start, end in group)
        n = len(group)
        q_tail = query.new_zeros(n, query.shape[1], width, query.shape[3])
        k_tail = key.new_zeros(n, key.shape[1], width, key.shape[3])
        v_tail = value.new_zeros(n, value.shape[1], width, value.shape[3])
        for b, (start, end) in enumerate(group):
            q_tail[b, :, : end - start] = query[0, :, start:end]
            k_tail[b, :, : end - start] = key[0, :, start:end]
            v_tail[b, :, : end - start] = value[0, :, start:end]
        keys = torch.cat([key[:, :, :prefix].expand(n, -1, -1, -1), k_tail], dim=2)
        values = torch.cat([value[:, :, :prefix].expand(n, -1, -1, -1), v_tail], dim=2)
        mask = torch.ones(n, 1, width, prefix + width, dtype=torch.bool, device=query.device)
        mask[..., prefix:] = torch.ones(width, width, dtype=torch.bool, device=query.device).tril()
        out = call.sdpa(q_tail, keys, values, mask)  # (n, width, heads, dim)
        pieces.extend(out[b : b + 1, : end - start] for b, (start, end) in enumerate(group))
    return torch.cat(pieces, dim=1)


def _batch_attention(call: AttentionCall, batch: BatchPacking) -> torch.Tensor:
    """Sdpa for a :class:`BatchPacking`: each row on its own real tokens.

    Each row runs as :func:`_packed_attention` runs one, padded back to the batch width with zeros (padding
    outputs feed only padding positions).
    """
    pieces = []
    for b, row in enumerate(batch.rows):
        n = row.total_len
        own = call.row(b, n)
        out = _packed_attention(own, row) if row.extra_lens else own.sdpa(own.query, own.key, own.value, None)
        if n < batch.width:
            out = torch.cat([out, out.new_zeros(1, batch.width - n, *out.shape[2:])], dim=1)
        pieces.append(out)
    return torch.cat(pieces, dim=0)


_registered = False


def register_attention() -> None:
    """Register the capturing attention (and its mask builder) with transformers, once per process."""
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, _qrhead_attention)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)
    _registered = True


def prepare_model(model: PreTrainedModel) -> None:
    """Switch ``model`` to the capturing attention; without an active recorder it computes plain sdpa."""
    register_attention()
    if getattr(model.config, "_attn_implementation", None) != ATTENTION_NAME:
        model.set_attn_implementation(ATTENTION_NAME)


def decoder_of(model: PreTrainedModel) -> torch.nn.Module:
    """The base decoder (no LM head) of a causal LM."""
    get_decoder = getattr(model, "get_decoder", None)
    decoder = get_decoder() if callable(get_decoder) else getattr(model, "model", model)
    if not hasattr(decoder, "layers"):
        raise UnsupportedModelError(f"{type(model).__name__}: cannot find its decoder layers")
    return decoder


class _StopForward(Exception):
    """Raised after the deepest selected layer to skip the rest of the model."""


def _raise_stop(*_: object) -> None:
    raise _StopForward


@contextmanager
def recording(
    recorder: HeadRecorder | BatchRecorder | None, packing: Packing | BatchPacking | None = None
) -> Iterator[None]:
    """Make ``recorder`` and ``packing`` the active ones while the block runs (restored afterwards)."""
    token = _ACTIVE_RECORDER.set(recorder)
    packing_token = _ACTIVE_PACKING.set(packing)
    try:
        yield
    finally:
        _ACTIVE_PACKING.reset(packing_token)
        _ACTIVE_RECORDER.reset(token)


def _cache_kwarg(decoder: torch.nn.Module) -> str:
    params = inspect.signature(decoder.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def run_layers(
    model: PreTrainedModel,
    input_ids: Sequence[int] | Sequence[Sequence[int]],
    cache: Cache,
    *,
    start: int,
    stop_after: int | None,
    recorder: HeadRecorder | BatchRecorder | None = None,
    packing: Packing | BatchPacking | None = None,
) -> None:
    """Run the decoder on ``input_ids`` at absolute positions ``start..``, appending to ``cache``.

    ``input_ids`` is one sequence, or a batch of equally long sequences (a cache forked with ``batch=``).
    Stops after layer ``stop_after`` (every layer when ``None``). With a ``recorder``, captures its heads. With a
    ``packing`` (one sequence laid out as it says, on an empty cache), further tails get their own positions and
    attention (see :class:`Packing`); with a :class:`BatchPacking` (one right-padded sequence per row, on an
    empty cache forked to the batch), each row likewise, on its own tokens.
    """
    decoder = decoder_of(model)
    device = next(model.parameters()).device
    batch: list[list[int]] = (
        [list(input_ids)]  # type: ignore[arg-type]
        if input_ids and isinstance(input_ids[0], int)
        else [list(r) for r in input_ids]  # type: ignore[arg-type]
    )
    ids = torch.tensor(batch, dtype=torch.long, device=device)
    if isinstance(packing, BatchPacking):
        if start != 0 or ids.shape != (len(packing.rows), packing.width):
            raise ValueError("a batch-packed forward is one padded sequence per row, packing.width long, from 0")
        positions = torch.tensor(packing.positions(), device=device)
    elif packing is not None:
        if start != 0 or ids.shape != (1, packing.total_len):
            raise ValueError("a packed forward is one sequence of packing.total_len tokens on an empty cache")
        positions = torch.tensor([packing.positions()], device=device)
    else:
        positions = torch.arange(start, start + ids.shape[1], device=device).unsqueeze(0).expand(ids.shape[0], -1)
    layers = cast(torch.nn.ModuleList, decoder.layers)  # decoder_of checked that it has them
    handle = None
    if stop_after is not None and stop_after < len(layers) - 1:
        handle = layers[stop_after].register_forward_hook(_raise_stop)
    kwargs = {_cache_kwarg(decoder): cache, "use_cache": True, "position_ids": positions}
    stop_token = _STOP_LAYER.set(stop_after if handle is not None else None)
    try:
        with recording(recorder, packing):
            decoder(input_ids=ids, **kwargs)
    except _StopForward:
        pass
    finally:
        _STOP_LAYER.reset(stop_token)
        if handle is not None:
            handle.remove()


def new_cache(model: PreTrainedModel) -> Cache:
    """An empty key/value cache for ``model``."""
    from transformers import DynamicCache

    return DynamicCache(config=model.config)


def empty_copy(blank: Cache) -> Cache:
    """A new empty cache like ``blank`` (an empty cache, never used itself).

    Building a cache from the model's config reads the config dozens of times per call (about a millisecond on
    the CPU, issue #18); a fork (:func:`fork_cache`) of an empty one costs microseconds.
    """
    layers = getattr(blank, "layers", None)
    if layers is None or any(getattr(layer, "is_initialized", False) for layer in layers):
        raise ValueError("empty_copy needs an empty cache with layer objects")
    return fork_cache(blank)


def _shallow_copy(obj: Any) -> Any:  # noqa: ANN401 - any cache layer class
    """``copy.copy`` for a plain object, without the pickle protocol's detour (5x faster, 30 layers per call)."""
    if not hasattr(obj, "__dict__"):
        return copy.copy(obj)
    fresh = object.__new__(type(obj))
    fresh.__dict__.update(obj.__dict__)
    return fresh


def fork_cache(cache: Cache, batch: int = 1, length: int | None = None) -> Cache:
    """A cache that starts from ``cache``'s contents without copying tensors.

    Cache layers replace their key/value tensors on update (``torch.cat``) instead of writing into them, so a
    shallow copy of each layer object is an independent cache sharing the prefix's memory. With ``batch > 1``
    the batch-of-one prefix is broadcast (``expand``, no copy) so that ``batch`` tails can run in one forward.
    With ``length``, the fork keeps only the first ``length`` positions (a view), which needs
    :func:`can_crop`.
    """
    layers = getattr(cache, "layers", None)
    if layers is None:
        if batch != 1 or length is not None:
            raise UnsupportedModelError(f"{type(cache).__name__}: cannot fork this cache for a batch of tails")
        return copy.deepcopy(cache)
    fork = copy.copy(cache)
    forked: list[Any] = [_shallow_copy(layer) for layer in layers]  # layer classes differ; all checked below
    fork.layers = forked
    for layer in forked:
        if getattr(layer, "keys", None) is None or layer.keys.dim() != 4:
            continue
        if length is not None:
            layer.keys = layer.keys[:, :, :length]
            layer.values = layer.values[:, :, :length]
        if batch != 1:
            layer.keys = layer.keys.expand(batch, -1, -1, -1)
            layer.values = layer.values.expand(batch, -1, -1, -1)
    return fork


def can_crop(cache: Cache) -> bool:
    """Whether every layer of ``cache`` keeps all positions from the start, so a prefix of it is a valid cache.

    Sliding-window layers drop old positions, so a cache holding them cannot be cut back.
    """
    layers = getattr(cache, "layers", None)
    return layers is not None and all(
        type(layer).__name__ == "DynamicLayer" and not getattr(layer, "is_sliding", False) for layer in layers
    )
