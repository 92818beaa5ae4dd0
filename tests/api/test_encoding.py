"""Unit specifications for how the client speaks Precoro's formats (no network)."""

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from precoro_assets.api.encoding import build_query, encode_form, normalized_url
from precoro_assets.api.errors import PrecoroValidationError, QuotaExhausted
from precoro_assets.api.quota import QuotaLimits
from precoro_assets.api.responses import expect_list, parse_rate_limit


class TestFormEncoding:
    def test_nested_dict_becomes_bracket_keys(self):
        assert encode_form({"invoice": {"id": 9}, "sumPaid": Decimal("10.50")}) == [
            ("invoice[id]", "9"), ("sumPaid", "10.50")]

    def test_list_of_scalars_repeats_key_with_empty_brackets(self):
        assert encode_form({"currencies": ["USD", "EUR"]}) == [("currencies[]", "USD"), ("currencies[]", "EUR")]

    def test_list_of_dicts_is_indexed(self):
        form = {"contacts": {"data": [{"email": "a@b.c", "name": "A"}, {"email": "d@e.f"}]}}
        assert encode_form(form) == [
            ("contacts[data][0][email]", "a@b.c"), ("contacts[data][0][name]", "A"),
            ("contacts[data][1][email]", "d@e.f")]

    def test_decimals_are_exact_and_never_scientific(self):
        assert encode_form({"sumPaid": Decimal("1E+3")}) == [("sumPaid", "1000")]

    def test_floats_are_refused_because_money_is_never_float(self):
        with pytest.raises(TypeError):
            encode_form({"sumPaid": 10.5})

    def test_datetimes_are_iso_in_utc(self):
        moment = datetime(2025, 8, 10, 14, 34, 56, tzinfo=timezone(timedelta(hours=2)))
        assert encode_form({"payDate": moment}) == [("payDate", "2025-08-10T12:34:56+00:00")]

    def test_none_is_sent_as_empty_string_to_clear_a_field(self):
        assert encode_form({"externalIntegrationLog": None}) == [("externalIntegrationLog", "")]


class TestFilters:
    def test_created_and_approved_dates_use_dd_mm_yyyy(self):
        assert build_query(created_from=date(2025, 8, 1), created_to=date(2025, 8, 31),
                           approved_from=date(2025, 1, 2), approved_to=date(2025, 1, 3)) == [
            ("createDate[left_date]", "01.08.2025"), ("createDate[right_date]", "31.08.2025"),
            ("approvalDate[left_date]", "02.01.2025"), ("approvalDate[right_date]", "03.01.2025")]

    def test_modified_since_is_utc_without_offset(self):
        moment = datetime(2025, 8, 10, 14, 0, 5, tzinfo=timezone(timedelta(hours=2)))
        assert build_query(modified_since=moment) == [("modifiedSince", "2025-08-10T12:00:05")]

    def test_naive_modified_since_is_taken_as_utc(self):
        assert build_query(modified_since=datetime(2025, 8, 10, 0, 0, 0)) == [
            ("modifiedSince", "2025-08-10T00:00:00")]

    def test_lists_repeat_the_key_with_brackets(self):
        assert build_query(status=[2, 4], external_id=["A-1", "B-2"]) == [
            ("status[]", "2"), ("status[]", "4"), ("external_id[]", "A-1"), ("external_id[]", "B-2")]

    def test_booleans_and_plain_values_and_none(self):
        assert build_query(enable=True, attachedFile=1, waitingForapprove="yes", supplier=None) == [
            ("enable", "true"), ("attachedFile", "1"), ("waitingForapprove", "yes")]

    def test_a_date_filter_refuses_a_string(self):
        with pytest.raises(TypeError):
            build_query(created_from="2025-08-01")

    def test_identical_get_key_ignores_parameter_order(self):
        one = normalized_url("/invoices", [("page", "2"), ("per_page", "200"), ("status[]", "2")])
        two = normalized_url("/invoices", [("status[]", "2"), ("per_page", "200"), ("page", "2")])
        assert one == two
        assert one != normalized_url("/invoices", [("page", "3"), ("per_page", "200"), ("status[]", "2")])


class TestUnwrap:
    def test_wrapped_list(self):
        assert expect_list({"data": [{"id": 1}]}) == [{"id": 1}]

    def test_bare_list(self):
        assert expect_list([{"id": 1}]) == [{"id": 1}]

    def test_doubly_wrapped_and_missing(self):
        assert expect_list({"data": {"data": [1, 2]}}) == [1, 2]
        assert expect_list(None) == []
        assert expect_list({"data": None}) == []

    def test_an_object_is_not_a_list(self):
        with pytest.raises(TypeError):
            expect_list({"id": 1})


class TestRateLimitBody:
    NOW = datetime(2025, 12, 16, 9, 0, 0, tzinfo=UTC)

    def test_retry_time_comes_from_the_json_body_plus_one_second_of_rounding(self):
        body = {"error": "Too many requests for this endpoint", "RateLimit-Type": "Route based limiter by minute",
                "RateLimit-Retry-After": "2025-12-16 09:00:49 UTC", "RateLimit-Limit": 1}
        limit_type, retry_at = parse_rate_limit(body, self.NOW)
        assert limit_type == "Route based limiter by minute"
        assert retry_at == datetime(2025, 12, 16, 9, 0, 50, tzinfo=UTC)

    def test_a_retry_time_with_milliseconds_gets_one_millisecond_of_rounding(self):
        """Precoro shows whole seconds; a server that shows milliseconds is read to the millisecond too."""
        body = {"RateLimit-Type": "Second limiter", "RateLimit-Retry-After": "2025-12-16 09:00:49.350 UTC"}
        _, retry_at = parse_rate_limit(body, self.NOW)
        assert retry_at == datetime(2025, 12, 16, 9, 0, 49, 351000, tzinfo=UTC)

    def test_without_a_body_time_the_header_is_used(self):
        _, retry_at = parse_rate_limit({"RateLimit-Type": "Minute limiter"}, self.NOW, retry_after_header="30")
        assert retry_at == self.NOW + timedelta(seconds=30)

    def test_without_any_time_the_named_window_is_waited_out(self):
        _, retry_at = parse_rate_limit({"RateLimit-Type": "Daily limiter"}, self.NOW)
        assert retry_at == self.NOW + timedelta(days=1)
        _, retry_at = parse_rate_limit({"RateLimit-Type": "Hourly limiter"}, self.NOW, QuotaLimits(time_scale=10))
        assert retry_at == self.NOW + timedelta(seconds=360)

    def test_garbage_body_still_gives_a_time(self):
        limit_type, retry_at = parse_rate_limit("not json", self.NOW)
        assert limit_type == "unknown limiter" and retry_at > self.NOW


class TestErrors:
    def test_validation_error_names_each_field_and_message(self):
        body = {"errors": {"errors": {"sumPaid": "The Invoice is already fully paid."}}}
        error = PrecoroValidationError(PrecoroValidationError.parse_fields(body), method="POST", path="/payments")
        assert error.fields == {"sumPaid": "The Invoice is already fully paid."}
        assert "sumPaid: The Invoice is already fully paid." in str(error)

    def test_quota_exhausted_says_when_work_resumes_and_survives_pickling(self):
        import pickle

        error = QuotaExhausted(datetime(2025, 12, 17, 8, 0, 0, tzinfo=UTC), "day")
        assert "2025-12-17 08:00:00 UTC" in str(error)
        copy = pickle.loads(pickle.dumps(error))
        assert copy.resume_at == error.resume_at and copy.window == "day" and str(copy) == str(error)
