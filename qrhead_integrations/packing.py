"""How a packed forward lays its sequences out: the prefix, its tails, and several such rows in one batch.

Pure layout (positions and which keys each row may see), no model: :mod:`.capture` reads it inside the attention
function, and :mod:`.forward` builds it for each planned prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Packing:
    """Layout of a packed forward: the prefix, the first tail, then further tails on their own.

    The first tail continues the prefix causally; further tails each attend to the prefix and to their own
    earlier tokens only, at positions that restart after the prefix — so one forward gives every tail exactly
    what a separate forward of prefix + tail would.

    Why: on a CPU a forward of a few tokens still reads every weight of every layer it runs; packing the
    ``"N/A"`` tail (and the other queries of ``score_many``) into the prefix forward saves those reads.
    """

    prefix_len: int
    first_len: int
    extra_lens: tuple[int, ...] = ()

    @property
    def main_len(self) -> int:
        """Prefix plus first tail: the causal part of the sequence."""
        return self.prefix_len + self.first_len

    @property
    def total_len(self) -> int:
        """The whole packed sequence: prefix and every tail."""
        return self.main_len + sum(self.extra_lens)

    def extra_spans(self) -> list[tuple[int, int]]:
        """``[start, end)`` sequence indices of each further tail."""
        spans, start = [], self.main_len
        for length in self.extra_lens:
            spans.append((start, start + length))
            start += length
        return spans

    def positions(self) -> list[int]:
        """Position ids: further tails restart right after the prefix."""
        out = list(range(self.main_len))
        for length in self.extra_lens:
            out.extend(range(self.prefix_len, self.prefix_len + length))
        return out

    def allowed(self, first_row: int, device: torch.device | None = None) -> torch.Tensor:
        """``(rows, total_len)`` boolean mask of the keys each row from ``first_row`` on may attend to."""
        rows = torch.arange(first_row, self.total_len, device=device)[:, None]
        cols = torch.arange(self.total_len, device=device)[None, :]
        allowed = (cols <= rows) & ((rows < self.main_len) | (cols < self.prefix_len))
        for start, end in self.extra_spans():
            in_span = (rows >= start) & (rows < end)
            allowed |= in_span & (cols >= start) & (cols <= rows)
        return allowed


@dataclass(frozen=True)
class BatchPacking:
    """Several independent packed sequences in one right-padded batch forward.

    Each row is one :class:`Packing` (one scoring row's prompt).

    Why: on a GPU a forward of one row leaves most of the device idle, and every forward pays the same host-side
    launch costs; rows of similar length run together. Each row's attention and recorded heads are computed on
    its own real tokens only (a row never sees another row, nor its own padding), so every row gets exactly
    what a forward of it alone gives, up to floating-point summation order.
    """

    rows: tuple[Packing, ...]

    @property
    def width(self) -> int:
        """The padded sequence length: the longest row."""
        return max(row.total_len for row in self.rows)

    def positions(self) -> list[list[int]]:
        """Position ids per row; padding continues the row's last position (its outputs are never read)."""
        out = []
        for row in self.rows:
            own = row.positions()
            last = own[-1] if own else -1
            out.append(own + list(range(last + 1, last + 1 + self.width - row.total_len)))
        return out
