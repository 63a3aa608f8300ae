"""Cost of one student training step (batch 32, SGD, DiXtill loss) against the padded length ``max_len``.

    python -m dixtill_lib.benchmarks.student_step [--lengths 40,64,150] [--steps 30] [--threads 1]

The BiLSTM runs over the padding (no packing, as in the authors' code), so the cost grows linearly with
``max_len``. Prints ms per step and the ratio to the first length (the book's claim: 150 costs about 4×
what 40 costs). The vocabulary has the full data set's size (18,114 words)."""
from __future__ import annotations

import argparse
import time

import torch


def step_ms(max_len: int, steps: int = 30, vocab_size: int = 18_114, seed: int = 0) -> float:
    from ..distill import dixtill_loss
    from ..student import BiLSTMAttentionStudent, StudentConfig

    torch.manual_seed(seed)
    model = BiLSTMAttentionStudent(StudentConfig(vocab_size=vocab_size, max_len=max_len))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.99)
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(4, 33, (32,), generator=g)          # tweets have 1-33 words, median 11
    mask = (torch.arange(max_len)[None, :] < lengths[:, None]).float()
    ids = torch.randint(2, vocab_size, (32, max_len), generator=g) * mask.long()
    y, zt, expl = torch.randint(0, 3, (32,), generator=g), torch.randn(32, 3, generator=g), torch.randn(32, max_len) * mask

    def one() -> None:
        z, sig = model(ids, mask)
        loss, _ = dixtill_loss(z, sig, y, zt, expl)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):  # warm-up
        one()
    t0 = time.perf_counter()
    for _ in range(steps):
        one()
    return (time.perf_counter() - t0) / steps * 1e3


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", default="40,64,150")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    lengths = [int(x) for x in args.lengths.split(",")]
    ms = {L: step_ms(L, args.steps) for L in lengths}
    base = ms[lengths[0]]
    for L in lengths:
        print(f"max_len {L:4d}: {ms[L]:7.1f} ms/step  ({ms[L] / base:4.2f}x of max_len {lengths[0]})")
    print(f"15 epochs on 8,585 tweets (269 steps/epoch) at max_len {lengths[0]}: ~{base * 269 * 15 / 60e3:.1f} min; "
          f"at {lengths[-1]}: ~{ms[lengths[-1]] * 269 * 15 / 60e3:.1f} min")


if __name__ == "__main__":
    main()
