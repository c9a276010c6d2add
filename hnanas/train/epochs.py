"""The checkpointed epoch loop that search stages and retrain share.

After every epoch the loop hands its caller one dict to save: the caller's own entries (epoch, best so far,
searcher state, ...) and the training state — the weights, optimizer and schedule states and every RNG state,
taken at the epoch's end — so a run killed at any point and resumed from its last save continues exactly as an
uninterrupted run (same machine, same thread count). :meth:`Trainee.restore` puts that state back.

Checkpoint keys are the caller's (``Trainee.keys``): a retrain's ``last.pt`` names them ``model_state``,
``optimizer_state``, ``scheduler_state``, a search's state ``model``, ``optimizer``, ``scheduler``; both have
``rng``. Files written before this module existed load unchanged.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from torch import nn

from hnanas.progress import progress
from hnanas.runs import restore_rng_state, rng_state

SEARCH_KEYS = ("model", "optimizer", "scheduler")
RETRAIN_KEYS = ("model_state", "optimizer_state", "scheduler_state")


@dataclass
class Trainee:
    """What an epoch trains and a checkpoint must hold to continue it."""

    model: nn.Module
    optimizer: Any  # a torch optimizer (or anything with state_dict / load_state_dict)
    scheduler: Any
    keys: tuple[str, str, str] = SEARCH_KEYS

    def state(self) -> dict:
        """The training state now: weights, optimizer, schedule and RNG states."""
        weights = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        return {self.keys[0]: weights, self.keys[1]: self.optimizer.state_dict(),
                self.keys[2]: self.scheduler.state_dict(), "rng": rng_state()}

    def restore(self, state: Mapping) -> None:
        """Put back a state saved by :func:`run_epochs` (weights, optimizer, schedule, RNG)."""
        self.model.load_state_dict(state[self.keys[0]])
        self.optimizer.load_state_dict(state[self.keys[1]])
        self.scheduler.load_state_dict(state[self.keys[2]])
        restore_rng_state(state["rng"])


def run_epochs(trainee: Trainee, start: int, stop: int, one_epoch: Callable[[int], Mapping | None],
               save: Callable[[int, dict], None], *, desc: str | None = None,
               postfix: Callable[[], Mapping[str, str]] | None = None, after: Callable[[], None] | None = None
               ) -> None:
    """Epochs ``start`` .. ``stop - 1`` (0-based): ``one_epoch(epoch)`` trains and validates one and returns the
    caller's checkpoint entries (None: nothing to save, e.g. a process that does not write), then
    ``save(epoch, entries + trainee.state())``, then ``after()`` (e.g. a barrier of a multi-process search).
    ``desc``: a progress bar over the epochs, with ``postfix()``."""
    bar_context = progress(total=stop, initial=start, desc=desc, unit="epoch") if desc else contextlib.nullcontext()
    with bar_context as bar:
        for epoch in range(start, stop):
            entries = one_epoch(epoch)
            if entries is not None:
                save(epoch, {**entries, **trainee.state()})
            if after is not None:
                after()
            if bar is not None:
                bar.update()
                if postfix is not None:
                    bar.set_postfix(**postfix(), refresh=False)
