"""results.json: the one place where an analysis's typed result becomes JSON.

The records below the results (an SRM check, a posterior, an ROI, a design check, a
hierarchical fit, the monitor's readout, the IV estimate) keep their own small ``to_dict``;
this module assembles them into the document ``liftlab analyze`` writes, builds the
contribution items, and turns the effects into a tidy frame. The document is described by
``docs/results.schema.json`` and explained in ``docs/results.md``.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

    from liftlab.analyses.confirmation import ConfirmationReadout
    from liftlab.analyses.experiment import (
        Adjustment,
        AnalysisResult,
        AnalysisWarning,
        AsOf,
        Effect,
        HierarchicalSection,
        IvSection,
        Money,
        Sections,
    )
    from liftlab.stats.contribution import (
        ChannelContribution,
        Contribution,
        Interaction,
        ProgrammeEffect,
    )

TOTAL_EFFECT_DESCRIPTION = "all channels on vs all off, per customer"
CONFIRMATION_METHOD = ("Welch difference of the policy and business-as-usual arms, times the "
                       "value per unit, minus the extra contact cost; the gap to the prediction "
                       "by a normal test with both standard errors")


def iso_utc(ts: dt.datetime) -> str:
    """A moment as results.json writes it: UTC, to the second, ``Z``."""
    return ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def analysis_json(result: AnalysisResult) -> dict[str, Any]:
    """The whole results.json document of one analysis."""
    spec = result.spec
    out: dict[str, Any] = {
        "experiment": spec.id,
        "name": spec.title,
        "as_of": iso_utc(result.as_of),
        "status": result.status,
        "start": spec.start.isoformat(),
        "end": spec.end.isoformat(),
        "days_run": round(result.days_run, 2),
        "days_planned": (spec.end - spec.start).days,
        "design": spec.design,
        "channels": list(spec.channels),
        "primary_metric": spec.primary_metric,
        "alpha": spec.alpha,
        "n_units": result.n_units,
        "assigned_by": result.assigned_by,
        **(as_of_json(result.as_of_basis) if result.as_of_basis else {}),
        "health": {
            "srm_p_value": result.srm_p_value,
            "srm_ok": result.srm_ok,
            "srm": [c.to_dict() for c in result.srm],
            "warnings": [warning_json(w) for w in result.warnings],
            "data_checks": list(result.data_checks),
            "design_checks": [c.to_dict() for c in result.design],
        },
        "effects": [effect_json(e) for e in result.effects],
    }
    out.update(sections_json(result.sections))
    out["definition"] = {
        "yaml": result.yaml_text,
        "data_source": result.data_source,
        "window": [iso_utc(result.window[0]), iso_utc(result.window[1])],
        "parameters": {
            "alpha": spec.alpha,
            "as_of": iso_utc(result.as_of),
            "cuped_pre_period_days": spec.covariates.pre_period_days,
            "bayes": spec.analysis.bayes,
            "seed": spec.analysis.seed,
        },
        "software": software_versions(),
    }
    return out


def as_of_json(basis: AsOf) -> dict[str, Any]:
    return {
        "as_of_source": basis.source,
        "data_freshness": None if basis.freshness is None else iso_utc(basis.freshness),
    }


def warning_json(w: AnalysisWarning) -> dict[str, str]:
    return {"code": w.code, "severity": w.severity, "message": w.message}


def effect_json(e: Effect) -> dict[str, Any]:
    """One ``effects`` item: the comparison, its lift with intervals and p-values, the
    posterior, and (primary metric, whole population) cost and ROI."""
    lift = e.lift
    out: dict[str, Any] = {
        "channel": e.channel,
        "variant": e.variant,
        "metric": e.metric.name,
        "metric_kind": e.metric.kind,
        "guardrail": e.metric.guardrail,
        "direction": e.metric.desired_direction,
        "segment": e.segment,
        "n_treatment": e.n_treatment,
        "n_holdout": e.n_holdout,
        "mean_treatment": lift.mean_treatment,
        "mean_holdout": lift.mean_holdout,
        "lift_abs": lift.abs,
        "lift_abs_ci": list(lift.abs_ci),
        "se": lift.abs_se,
        "lift_rel": lift.rel,
        "lift_rel_ci": list(lift.rel_ci),
        "p_value": lift.p_value,
        "rel_p_value": lift.rel_p_value,
        "p_adjusted": e.p_adjusted,
        "ci_level": e.ci_level,
        "method": lift.method,
        "cuped": lift.cuped,
        "variance_reduction": lift.variance_reduction,
        "winsorize": e.metric.winsorize,
        "winsorize_cap": e.winsorize_cap,
        "verdict": e.verdict,
        "error": lift.error,
        "incremental_total": e.incremental_total,
        "cost": e.cost,
        "prob_positive": None if e.posterior is None else e.posterior.prob_positive,
        "bayes": None if e.posterior is None else e.posterior.to_dict(),
        "covariates": None if e.covariates is None else list(e.covariates),
        "non_inferiority": None if e.non_inferiority is None else e.non_inferiority.to_dict(),
    }
    if e.money is not None:
        out.update(money_json(e.money))
    return out


def money_json(m: Money) -> dict[str, Any]:
    return {
        **m.roi.to_dict(),
        "roi_basis": m.roi_basis,
        "cost_basis": m.cost_basis,
        "contacts": m.contacts,
    }


def sections_json(s: Sections) -> dict[str, Any]:
    """The sections after the effects. Every key is always written; null means the section
    was not computed for this experiment."""
    return {
        "multiple_testing": multiple_testing_json(s.multiple_testing),
        **contribution_sections(s.contribution),
        "landing": [
            row
            for sec in s.landing
            for row in sec.landing.to_dicts(sec.channel, sec.variant, sec.last_touch)
        ],
        "iv": None if s.iv is None else iv_json(s.iv),
        "bayes": None if s.bayes is None else hierarchical_json(s.bayes),
        "sequential": None if s.sequential is None else s.sequential.sequential_summary(),
        "quantiles": None if s.quantiles is None else list(s.quantiles),
        "confirmation": None if s.confirmation is None else confirmation_json(s.confirmation),
        "pressure": s.pressure,
    }


def confirmation_json(c: ConfirmationReadout) -> dict[str, Any]:
    return {
        "source": c.source, "bau": c.bau, "metric": c.metric,
        "value_per_unit": c.value_per_unit, "n_policy": c.n_policy, "n_bau": c.n_bau,
        "extra_cost_per_customer": c.extra_cost_per_customer,
        "predicted_gain": c.predicted_gain, "predicted_gain_ci": list(c.predicted_gain_ci),
        "realised_gain": c.realised_gain,
        "realised_gain_ci": None if c.realised_gain_ci is None else list(c.realised_gain_ci),
        "realised_minus_predicted": c.gap,
        "realised_minus_predicted_ci": None if c.gap_ci is None else list(c.gap_ci),
        "p_value": c.p_value, "consistent": c.consistent, "error": c.error,
        "method": CONFIRMATION_METHOD,
    }


def multiple_testing_json(m: Adjustment) -> dict[str, Any]:
    return {
        "method": m.method,
        "family": m.family,
        "comparisons": m.comparisons,
        "applied": m.applied,
        "description": m.description,
    }


def contribution_sections(c: Contribution | ProgrammeEffect | None) -> dict[str, Any]:
    """``contribution``, ``interactions`` and ``total_effect``: a factorial's split, the
    whole programme against the blind zone (global holdout: one item, no interactions), or
    nulls (no revenue column, variants, more than 4 channels, or too few units)."""
    from liftlab.stats.contribution import ProgrammeEffect

    if c is None:
        return {"contribution": None, "interactions": None, "total_effect": None}
    if isinstance(c, ProgrammeEffect):
        return {"contribution": [programme_json(c)], "interactions": None, "total_effect": None}
    return {
        "contribution": [channel_contribution_json(x) for x in c.per_channel],
        "interactions": [interaction_json(i) for i in c.interactions],
        "total_effect": {
            "metric": c.metric,
            "estimate": c.total.value,
            "ci": list(c.total.ci),
            "se": c.total.se,
            "p_value": c.total.p_value,
            "description": TOTAL_EFFECT_DESCRIPTION,
        },
    }


def channel_contribution_json(c: ChannelContribution) -> dict[str, Any]:
    """A ``contribution`` item: one channel's main, Shapley, solo and leave-one-out effects."""
    return {
        "channel": c.channel,
        "metric": c.metric,
        "incremental_revenue_per_customer": c.main.value,
        "ci": list(c.main.ci),
        "se": c.main.se,
        "p_value": c.main.p_value,
        "n_treated": c.n_treated,
        "incremental_total": c.total.value,
        "incremental_total_ci": list(c.total.ci),
        "shapley": c.shapley.value,
        "shapley_ci": list(c.shapley.ci),
        "solo": c.solo.value,
        "solo_ci": list(c.solo.ci),
        "leave_one_out": c.leave_one_out.value,
        "leave_one_out_ci": list(c.leave_one_out.ci),
    }


def interaction_json(i: Interaction) -> dict[str, Any]:
    return {
        "channels": list(i.channels),
        "order": len(i.channels),
        "metric": i.metric,
        "estimate": i.estimate.value,
        "ci": list(i.estimate.ci),
        "se": i.estimate.se,
        "p_value": i.estimate.p_value,
        "kind": i.kind,
    }


def programme_json(p: ProgrammeEffect) -> dict[str, Any]:
    """The global holdout's ``contribution`` item (``"programme": true``)."""
    return {
        "channel": "+".join(p.channels),
        "programme": True,
        "metric": p.metric,
        "incremental_revenue_per_customer": p.estimate.value,
        "ci": list(p.estimate.ci),
        "se": p.estimate.se,
        "p_value": p.estimate.p_value,
        "n_treated": p.n_treated,
        "n_holdout": p.n_blind,
        "incremental_total": p.total.value,
        "incremental_total_ci": list(p.total.ci),
    }


def iv_json(iv: IvSection) -> dict[str, Any]:
    return {
        **iv.estimate.to_dict(),
        "outcome_metric": iv.outcome_metric,
        "adoption_metric": iv.adoption_metric,
    }


def hierarchical_json(h: HierarchicalSection) -> dict[str, Any]:
    return {**h.fit.to_dict(), "segment": h.segment}


def effects_frame(effects: tuple[Effect, ...]) -> pl.DataFrame:
    """The effects as a tidy frame, one row per comparison: the scalar fields of each
    ``effects`` item, intervals as ``_lo``/``_hi`` columns, the segment as ``dim=value``."""
    import polars as pl

    rows = []
    for e in effects:
        d = effect_json(e)
        d["segment"] = (
            None if e.segment is None else ", ".join(f"{k}={v}" for k, v in e.segment.items())
        )
        for key in [k for k in d if k.endswith("_ci")]:
            lo, hi = d.pop(key) or (None, None)
            d[f"{key.removesuffix('_ci')}_lo"], d[f"{key.removesuffix('_ci')}_hi"] = lo, hi
        rows.append({k: v for k, v in d.items() if not isinstance(v, dict | list)})
    return pl.DataFrame(rows, infer_schema_length=None)


def software_versions() -> dict[str, str]:
    import numpy
    import polars as pl
    import scipy
    import statsmodels

    from liftlab import __version__

    return {
        "liftlab": __version__,
        "polars": pl.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "statsmodels": statsmodels.__version__,
    }
