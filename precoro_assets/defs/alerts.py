"""Alerts: someone hears when syncs stop. Two sensors post Slack-compatible JSON (`{"text": ...}`; Slack's and
Mattermost's incoming webhooks take it as is) to PRECORO_ALERT_URL:

- `precoro_run_failure_alerts`: a run of this code location failed (Dagster's `run_failure_sensor`);
- `precoro_quota_watch`: less than 10 % of the day's request quota is left (syncs stop when it runs out). Every
  few minutes it evaluates the asset check `quota_left` on `precoro/api` (reading the shared request ledger: no
  request) and records the verdict when it changes, so the check shows on the API's page; it posts when the verdict
  turns to a warning, once.

Without a URL the quota check is still evaluated and failures still show in the UI; nothing is posted. Dagster's
own sensors (dagster-slack's `make_slack_on_run_failure_sensor`, dagster-msteams') do the same for a workspace
that has them (docs/deployment.md).
"""

from __future__ import annotations

import json

import dagster as dg
import httpx
from pydantic import Field

from .resources import PrecoroResource
from .sources import PRECORO_API

QUOTA_CHECK = "quota_left"
LOW_SHARE = 0.10  # of the day's requests: below it, a warning
POST_TIMEOUT_S = 10.0


class AlertResource(dg.ConfigurableResource):
    """Where alerts go: an incoming-webhook URL (a secret: pass EnvVar("PRECORO_ALERT_URL"))."""

    url: str | None = Field(default=None, repr=False, description="PRECORO_ALERT_URL (unset: nothing is posted)")

    def post(self, text: str) -> bool:
        """Post `text`; whether it was sent (False without a URL). A refused post raises: the tick fails and Dagster
        shows why, and the run failure sensor tries the failure again on its next tick."""
        if not self.url:
            return False
        response = httpx.post(self.url, json={"text": text}, timeout=POST_TIMEOUT_S)
        if response.is_error:
            # the URL is a secret: the answer's status alone is said
            raise RuntimeError(f"the alert URL (PRECORO_ALERT_URL) answered {response.status_code}")
        return True


def quota_verdict(precoro: PrecoroResource) -> dg.AssetCheckEvaluation:
    """The check `quota_left`: the day's requests left, a warning below LOW_SHARE of them."""
    usage = precoro.get_client().usage()
    left = usage.remaining.get("day", precoro.per_day)
    passed = left >= LOW_SHARE * precoro.per_day
    return dg.AssetCheckEvaluation(
        asset_key=PRECORO_API.key, check_name=QUOTA_CHECK, passed=passed, severity=dg.AssetCheckSeverity.WARN,
        description=None if passed else f"{left} of the day's {precoro.per_day} Precoro requests are left: syncs "
                                         "stop when they run out and resume as the sliding day frees requests.",
        metadata={"requests left this day": left, "requests per day": precoro.per_day,
                  "warn below": int(LOW_SHARE * precoro.per_day)})


@dg.asset_check(asset=PRECORO_API.key, name=QUOTA_CHECK, description=(
    f"Warns when less than {LOW_SHARE:.0%} of the day's Precoro request quota is left (read from the shared "
    "request ledger: no request). The precoro_quota_watch sensor evaluates it every few minutes."))
def quota_left(precoro: PrecoroResource) -> dg.AssetCheckResult:
    verdict = quota_verdict(precoro)
    return dg.AssetCheckResult(passed=verdict.passed, severity=verdict.severity, description=verdict.description,
                               metadata=verdict.metadata)


def build_quota_watch(interval_seconds: int = 300) -> dg.SensorDefinition:
    @dg.sensor(name="precoro_quota_watch", minimum_interval_seconds=interval_seconds,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"Evaluates the check quota_left on precoro/api (no request) and posts to PRECORO_ALERT_URL "
                           f"when less than {LOW_SHARE:.0%} of the day's requests are left.")
    def precoro_quota_watch(context: dg.SensorEvaluationContext, precoro: PrecoroResource, alerts: AlertResource):
        verdict = quota_verdict(precoro)
        previous = json.loads(context.cursor) if context.cursor else None
        if previous is not None and previous == verdict.passed:
            return dg.SkipReason("The quota's verdict is unchanged: "
                                 + ("enough requests left." if verdict.passed else "still low."))
        if not verdict.passed and alerts.post(f"precoro-assets: {verdict.description}"):
            context.log.info("posted the quota warning to PRECORO_ALERT_URL")
        context.update_cursor(json.dumps(verdict.passed))
        return dg.SensorResult(asset_events=[verdict])

    return precoro_quota_watch


@dg.run_failure_sensor(name="precoro_run_failure_alerts", default_status=dg.DefaultSensorStatus.RUNNING,
                       description="Posts each failed run of this code location to PRECORO_ALERT_URL (unset: none).")
def precoro_run_failure_alerts(context: dg.RunFailureSensorContext, alerts: AlertResource) -> None:
    run = context.dagster_run
    reason = context.failure_event.message or "no message"
    what = run.tags.get("dagster/partition") or " to ".join(
        filter(None, (run.tags.get("dagster/asset_partition_range_start"),
                      run.tags.get("dagster/asset_partition_range_end"))))
    if alerts.post(f"precoro-assets: run {run.run_id} of {run.job_name}{f' ({what})' if what else ''} failed: "
                   f"{reason}"):
        context.log.info(f"posted the failure of run {run.run_id} to PRECORO_ALERT_URL")
