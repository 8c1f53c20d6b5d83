"""What every optimisation loop shares: the learning-rate schedule and the progress shown while it runs."""

from __future__ import annotations

import logging
import time

PROGRESS_LINE_SECONDS = 60  # without a terminal for the progress bar, a plain progress line this often


def warmup_linear(total_steps: int, warmup_fraction: float):
    """LambdaLR factor: a linear warm-up over `warmup_fraction` of the steps, then linear decay to zero."""
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


class Progress:
    """One epoch's progress: a tqdm bar with the loss and tokens/s on a terminal; without one (a log file, CI), a plain
    line through `log` about once a minute, e.g. `epoch 1/4: batch 212/352  train loss 0.5715  53,195 tok/s  about
    40 s left in the epoch`. `enabled`: None decides by the terminal, False shows nothing.
    """

    def __init__(self, log: logging.Logger, what: str, step: int, steps: int, enabled: bool | None):
        self.log, self.what, self.step, self.steps = log, what, step, steps
        self.first_step = step
        self.started = self.last_line = time.perf_counter()
        self.bar = None
        if enabled is not False:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=steps - step, desc=what, unit="batch", leave=False, disable=None if enabled is None else not enabled)

    def update(self, loss_sum: float, texts: int, tokens: int) -> None:
        """One more step, with the epoch's running totals: summed loss, texts and tokens."""
        self.step += 1
        if self.bar is None:
            return
        now = time.perf_counter()
        elapsed = now - self.started
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss_sum / texts:.4f}", tok_s=f"{tokens / elapsed:,.0f}")
        if self.bar.disable and now - self.last_line >= PROGRESS_LINE_SECONDS:
            self.last_line = now
            self.log.info("%s: batch %d/%d  train loss %.4f  %s tok/s  about %.0f s left in the epoch", self.what, self.step, self.steps,
                          loss_sum / texts, f"{tokens / elapsed:,.0f}", elapsed / (self.step - self.first_step) * (self.steps - self.step))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
