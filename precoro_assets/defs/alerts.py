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
import logging
import math

import dagster as dg
import httpx
from pydantic import Field

from .naming import PrecoroTranslator
from .resources import PrecoroResource

QUOTA_CHECK = "quota_left"
LOW_SHARE = 0.10  # of the day's requests: below it, a warning
POST_TIMEOUT_S = 10.0


class AlertResource(dg.ConfigurableResource):
    """Where alerts go: an incoming-webhook URL (a secret: pass EnvVar("PRECORO_ALERT_URL"))."""

    url: str | None = Field(default=None, repr=False, description="PRECORO_ALERT_URL (unset: nothing is posted)")

    def post(self, text: str) -> bool:
        """Post `text`; whether it was sent (False without a URL). A post that fails raises: the sensor's tick fails
        and the UI says why. The URL is a secret: no message names it, and httpx's own log line (INFO, with the
        whole URL) is held back while it is sent."""
        url = self.url.get_value() if isinstance(self.url, dg.EnvVar) else self.url  # used outside a run: unresolved
        if not url:
            return False
        httpx_log = logging.getLogger("httpx")
        level = httpx_log.level
        httpx_log.setLevel(max(level, logging.WARNING))
        try:
            response = httpx.post(url, json={"text": text}, timeout=POST_TIMEOUT_S)
        except httpx.HTTPError as error:
            raise RuntimeError(f"the alert URL (PRECORO_ALERT_URL) could not be reached ({type(error).__name__})"
                               ) from None
        finally:
            httpx_log.setLevel(level)
        if not response.is_success:  # a redirect delivered nothing either
            raise RuntimeError(f"the alert URL (PRECORO_ALERT_URL) answered {response.status_code}")
        return True


def quota_verdict(precoro: PrecoroResource, api: dg.AssetKey) -> dg.AssetCheckEvaluation:
    """The check `quota_left`: the day's requests left, a warning below LOW_SHARE of them, or while Precoro
    blocks the token (a 429 seen by any process: another integration may use the same token)."""
    usage = precoro.get_client().usage()
    left, warn_below = usage.remaining["day"], math.ceil(LOW_SHARE * precoro.per_day)
    passed = left >= warn_below and usage.blocked_until is None
    description = None
    if usage.blocked_until is not None:
        description = (f"Precoro refuses requests (429) until {usage.blocked_until:%Y-%m-%d %H:%M:%S %Z}: syncs "
                       "wait until then.")
    elif not passed:
        description = (f"{left} of the day's {precoro.per_day} Precoro requests are left: syncs stop when they run "
                       "out and resume as the sliding day frees requests.")
    return dg.AssetCheckEvaluation(
        asset_key=api, check_name=QUOTA_CHECK, passed=passed, severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={"requests left this day": left, "requests per day": precoro.per_day, "warn below": warn_below})


def build_quota_check(t: PrecoroTranslator) -> dg.AssetChecksDefinition:
    """The check `quota_left` on `<prefix>/api`."""

    @dg.asset_check(asset=t.key("api"), name=QUOTA_CHECK, required_resource_keys=t.resource_keys("precoro"),
                    description=f"Warns when less than {LOW_SHARE:.0%} of the day's Precoro request quota is left "
                    f"(read from the shared request ledger: no request). The {t.name('quota_watch')} sensor "
                    "evaluates it every few minutes.")
    def quota_left(context) -> dg.AssetCheckResult:  # unannotated: this module's annotations are strings
        verdict = quota_verdict(t.resource(context, "precoro"), t.key("api"))
        return dg.AssetCheckResult(passed=verdict.passed, severity=verdict.severity,
                                   description=verdict.description, metadata=verdict.metadata)

    return quota_left


def build_quota_watch(t: PrecoroTranslator, interval_seconds: int = 300) -> dg.SensorDefinition:
    @dg.sensor(name=t.name("quota_watch"), minimum_interval_seconds=interval_seconds,
               default_status=t.sensor_status(True), required_resource_keys=t.resource_keys("precoro", "alerts"),
               description=f"Evaluates the check quota_left on {t.key('api').to_user_string()} (no request) and "
                           f"posts to the alert URL when less than {LOW_SHARE:.0%} of the day's requests are left.")
    def precoro_quota_watch(context: dg.SensorEvaluationContext):
        precoro: PrecoroResource = t.resource(context, "precoro")
        alerts: AlertResource = t.resource(context, "alerts")
        verdict = quota_verdict(precoro, t.key("api"))
        previous = json.loads(context.cursor) if context.cursor else None
        if previous is not None and previous == verdict.passed:
            return dg.SkipReason("The quota's verdict is unchanged: "
                                 + ("enough requests left." if verdict.passed else "still low."))
        if not verdict.passed and alerts.post(f"precoro-assets ({t.key('api').to_user_string()}): "
                                              f"{verdict.description}"):
            context.log.info("posted the quota warning to the alert URL")
        context.update_cursor(json.dumps(verdict.passed))
        return dg.SensorResult(asset_events=[verdict])

    return precoro_quota_watch


def build_run_failure_alerts(t: PrecoroTranslator, alerts: AlertResource, jobs: set[str]) -> dg.SensorDefinition:
    """The sensor `<prefix>_run_failure_alerts`: a failed run of this company's `jobs` or assets, posted once it
    will not be retried. `alerts` is given directly, not as a resource: a run failure sensor receives resources only
    as parameters named after their keys, and a company's keys are prefixed."""

    def ours(context: dg.RunFailureSensorContext) -> bool:
        """In the bundled location every run; a company's: its jobs', and runs of its assets (launched from the UI:
        their asset selection, or their failed steps, name its keys)."""
        if t.bundled:
            return True
        run, prefix = context.dagster_run, list(t.key_prefix)
        return (run.job_name in jobs or any(key.path[:len(prefix)] == prefix for key in run.asset_selection or ())
                or any((event.step_key or "").startswith("__".join(prefix) + "__")
                       for event in context.get_step_failure_events()))

    @dg.run_failure_sensor(name=t.name("run_failure_alerts"), default_status=t.sensor_status(True),
                           description="Posts each failed run of this company's jobs and assets to the alert URL "
                                       "(PRECORO_ALERT_URL; unset: none), once it will not be retried.")
    def precoro_run_failure_alerts(context: dg.RunFailureSensorContext) -> None:
        run = context.dagster_run
        if run.tags.get("dagster/will_retry") == "true" or not ours(context):  # dagster.yaml retries a run twice
            return
        reason = context.failure_event.message or "no message"
        what = run.tags.get("dagster/partition") or " to ".join(
            filter(None, (run.tags.get("dagster/asset_partition_range_start"),
                          run.tags.get("dagster/asset_partition_range_end"))))
        if alerts.post(f"precoro-assets: run {run.run_id} of {run.job_name}{f' ({what})' if what else ''} failed: "
                       f"{reason}"):
            context.log.info(f"posted the failure of run {run.run_id} to the alert URL")

    return precoro_run_failure_alerts
