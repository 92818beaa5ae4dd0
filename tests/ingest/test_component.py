"""PrecoroComponent as a `dg` project's defs.yaml declares it: each company its own home and request budget unless
two companies say they share one, its sensors as the YAML says, and a secret only ever by its variable's name.
(tests/deployment/test_dg_project.py runs the component in a real project against the simulator.)"""

from __future__ import annotations

import dagster as dg
import pytest

from precoro_assets import PrecoroComponent


def company(name: str, extra: str = "", token: str | None = None) -> dg.Definitions:
    token = token or f"{{{{ env.{name.upper()}_TOKEN }}}}"
    component = PrecoroComponent.resolve_from_yaml(f"""
company: {name}
api_token: "{token}"
email: "{{{{ env.{name.upper()}_EMAIL }}}}"
base_url: http://127.0.0.1:9
{extra}
""")
    return component.build_defs(dg.ComponentTree.for_test().load_context)


@pytest.fixture(autouse=True)
def tokens(monkeypatch):
    for name in ("ACME", "GLOBEX", "INITECH"):
        monkeypatch.setenv(f"{name}_TOKEN", f"{name.lower()}-token")
        monkeypatch.setenv(f"{name}_EMAIL", f"ap@{name.lower()}.example")


def test_each_company_has_its_own_request_budget_under_its_home(tmp_path):
    acme = company("acme", f"home: {tmp_path / 'acme'}")
    globex = company("globex", f"home: {tmp_path / 'globex'}")
    assert acme.resources["acme_precoro"].state_dir == str(tmp_path / "acme" / "state" / "quota")
    assert globex.resources["globex_precoro"].state_dir == str(tmp_path / "globex" / "state" / "quota")


def test_two_companies_of_one_precoro_user_may_share_one_request_budget(tmp_path):
    shared = tmp_path / "one-user"
    acme = company("acme", f"home: {tmp_path / 'acme'}\nshared_budget: {shared}")
    globex = company("globex", f"home: {tmp_path / 'globex'}\nshared_budget: {shared}")
    acme_api, globex_api = acme.resources["acme_precoro"], globex.resources["globex_precoro"]
    assert acme_api.state_dir == globex_api.state_dir == str(shared)
    assert acme_api.shared_budget == globex_api.shared_budget == str(shared)  # one key: paced as one token
    alone = company("initech", f"home: {tmp_path / 'initech'}").resources["initech_precoro"]
    assert alone.shared_budget is None  # keyed by its own token
    # the rest of their state stays apart
    assert acme.resources["acme_outbox"].path != globex.resources["globex_outbox"].path
    assert acme.resources["acme_warehouse"].location == str(tmp_path / "acme" / "warehouse")


@pytest.mark.parametrize("sensors", ["true", "false"])
def test_the_yaml_turns_every_sensor_and_schedule_on_or_off(tmp_path, sensors):
    repository = company("acme", f"home: {tmp_path}\nsensors: {sensors}").get_repository_def()
    statuses = {str(definition.default_status.value) for definition in
                (*repository.sensor_defs, *repository.schedule_defs)}
    assert statuses == {"RUNNING" if sensors == "true" else "STOPPED"}


def test_a_token_written_out_is_refused_and_never_repeated(tmp_path):
    with pytest.raises(ValueError) as refused:
        company("acme", f"home: {tmp_path}", token="s3cr3t-token-value")
    assert "{{ env.NAME }}" in str(refused.value) and "s3cr3t" not in str(refused.value)


def test_a_project_keeps_its_own_executor_and_the_companys_jobs_run_in_one_process(tmp_path):
    acme = company("acme", f"home: {tmp_path}")
    project = dg.Definitions.merge(acme, dg.Definitions(executor=dg.multiprocess_executor))
    repository = project.get_repository_def()
    jobs = [job for job in repository.get_all_jobs() if job.name.startswith("acme_")]
    assert len(jobs) >= 5 and {job.executor_def.name for job in jobs} == {dg.in_process_executor.name}
    assert repository.get_job("__ASSET_JOB").executor_def.name == dg.multiprocess_executor.name


def test_a_wrong_attribute_is_named_as_the_yaml_names_it(tmp_path):
    with pytest.raises(ValueError) as refused:
        company("acme", f"home: {tmp_path}\ntimezone: Mars/Olympus\nstart_date: someday")
    message = str(refused.value)
    assert message.startswith("company acme: 2 settings are wrong")
    assert "timezone" in message and "start_date" in message and "PRECORO_TIMEZONE" not in message


def test_a_company_whose_e_mail_variable_is_unset_fails_to_load_saying_which(tmp_path, monkeypatch):
    monkeypatch.delenv("ACME_EMAIL")
    with pytest.raises(ValueError, match="ACME_EMAIL is not set: it holds the e-mail of the user whose Precoro API "
                                         "token is in ACME_TOKEN"):
        company("acme", f"home: {tmp_path}")


def test_webhooks_on_in_the_yaml_start_the_companys_webhook_sensor_and_poll_less(tmp_path):
    on = company("acme", f"home: {tmp_path}\nwebhooks: true").get_repository_def()
    off = company("acme", f"home: {tmp_path}").get_repository_def()
    assert on.get_sensor_def("acme_webhook_events").default_status == dg.DefaultSensorStatus.RUNNING
    assert off.get_sensor_def("acme_webhook_events").default_status == dg.DefaultSensorStatus.STOPPED
    # polling becomes the safety net for lost deliveries
    assert on.get_sensor_def("acme_changes").minimum_interval_seconds > \
        off.get_sensor_def("acme_changes").minimum_interval_seconds


def test_a_setting_named_inside_a_longer_one_keeps_its_name(tmp_path, monkeypatch):
    """`warehouse` stands for PRECORO_WAREHOUSE, not for the start of PRECORO_WAREHOUSE_DATA_PATH."""
    monkeypatch.setenv("PRECORO_WAREHOUSE_DATA_PATH", "/not/a/bucket")
    with pytest.raises(ValueError) as refused:
        company("acme", f"home: {tmp_path}\nwarehouse: {tmp_path / 'w'}")
    assert "PRECORO_WAREHOUSE_DATA_PATH must be" in str(refused.value)
