"""``cnn gradcheck --show N``: the sampled entries of each tensor, one row each, as the check judged them."""

from __future__ import annotations

from cnn_cli.learn.gradcheck import GradcheckResult, verdict


def format_entries(results: list[GradcheckResult]) -> str:
    """Per tensor, one row per shown entry: index, θ, L(θ+ε), L(θ−ε), numeric, analytic, relative error."""
    out = []
    header = f"  {'entry':<16}{'θ':>12}{'L(θ+ε)':>20}{'L(θ−ε)':>20}{'numeric':>14}{'analytic':>14}{'rel err':>10}"
    for result in results:
        if not result.entries:
            continue
        out.append(f"{result.name}  ({verdict(result)}, max rel err {result.max_rel_error:.2e})")
        out.append(header)
        for e in result.entries:
            index = str(e.index)
            if e.skipped:
                out.append(f"  {index:<16}{e.theta:>12.5g}{e.loss_plus:>20.12f}{e.loss_minus:>20.12f}  skipped: {e.skipped}")
            else:
                out.append(
                    f"  {index:<16}{e.theta:>12.5g}{e.loss_plus:>20.12f}{e.loss_minus:>20.12f}"
                    f"{e.numeric:>14.6e}{e.analytic:>14.6e}{e.rel_error:>10.1e}" + ("  (floor)" if e.on_floor else "")
                )
        out.append("")
    out.append("numeric = (L(θ+ε) − L(θ−ε)) / 2ε;  rel err = |a − n| / max(|a| + |n|, 1% of the tensor's largest |n|)")
    out.append("an entry passes when |a − n| ≤ atol + rtol·max(|a| + |n|, that 1%); (floor): within atol only")
    return "\n".join(out)
