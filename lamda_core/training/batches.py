"""Which samples each micro-batch holds: deterministic, so a resumed run repeats nothing."""
from __future__ import annotations

import torch


class Batches:
    """Deterministic micro-batches, a pure function of (seed, micro-batch index), so a resumed run
    sees exactly the batches it would have seen.

    Sample k of the stream is permutation_(k // n)[k % n], one permutation per epoch seeded by
    (seed, epoch). Without lengths, micro-batch m of process p holds stream positions
    m * batch * world + p * batch + (0..batch-1). With ``lengths`` (one number per sample), the
    stream is cut into groups of ``rounds`` * batch * world samples; each group is sorted by
    length, cut into micro-batches of similar lengths and those are shuffled (seeded by the
    group), so padding shrinks (about 3x less compute on short texts) while every sample is still
    seen once per epoch. A group holds at most a quarter of the data (at most GROUP_ROUNDS
    rounds): a group spanning epochs would put copies of one sample into one micro-batch, which
    on a 400-row set turned most of each batch into duplicates and stalled training.
    """

    GROUP_ROUNDS = 64

    def __init__(self, size: int, batch: int, world: int, rank: int, seed: int, lengths: list[int] | None = None):
        self.size, self.batch, self.world, self.rank, self.seed = size, batch, world, rank, seed
        self.lengths = lengths
        self.rounds = max(1, min(self.GROUP_ROUNDS, size // (4 * batch * world)))
        self._permutations: dict[int, torch.Tensor] = {}
        self._groups: dict[int, list[list[int]]] = {}

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch not in self._permutations:
            self._permutations[epoch] = torch.randperm(
                self.size, generator=torch.Generator().manual_seed(self.seed * 1000 + epoch)
            )
        return self._permutations[epoch]

    def _stream(self, start: int, count: int) -> list[int]:
        return [int(self._permutation(k // self.size)[k % self.size]) for k in range(start, start + count)]

    def _group(self, group: int) -> list[list[int]]:
        """The micro-batches of one length-sorted group, in their shuffled order."""
        if group not in self._groups:
            per_group = self.rounds * self.batch * self.world
            samples = sorted(self._stream(group * per_group, per_group), key=lambda i: self.lengths[i])
            chunks = [samples[k:k + self.batch] for k in range(0, per_group, self.batch)]
            order = torch.randperm(
                len(chunks), generator=torch.Generator().manual_seed(self.seed * 1000 + 7919 * group + 1)
            )
            self._groups = {group: [chunks[int(i)] for i in order]}  # one group at a time is enough
        return self._groups[group]

    def indices(self, micro_batch: int) -> list[int]:
        if self.lengths is None:
            return self._stream(micro_batch * self.batch * self.world + self.rank * self.batch, self.batch)
        group, round_ = divmod(micro_batch, self.rounds)
        return self._group(group)[round_ * self.world + self.rank]

    def epoch(self, micro_batch: int) -> float:
        return micro_batch * self.batch * self.world / self.size
