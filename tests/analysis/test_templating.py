"""Query templating: placeholders, errors that name what is known, and escaping."""

from __future__ import annotations

import ast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.analysis.templating import (
    QueryContext,
    TemplateError,
    escape_string,
    placeholders,
    render,
)

CTX = QueryContext(
    canary_hash="abc123",
    stable_hash="def456",
    rollout_name="checkout",
    rollout_namespace="shop",
    args={"service": "checkout", "window": "5m"},
)


def test_every_placeholder_with_and_without_spaces() -> None:
    query = (
        'x{a="{{args.service}}",c="{{ canary.hash }}",s="{{stable.hash}}",'
        'r="{{rollout.name}}",n="{{  rollout.namespace}}"}[{{args.window}}]'
    )
    assert render(query, CTX) == ('x{a="checkout",c="abc123",s="def456",r="checkout",n="shop"}[5m]')
    assert placeholders(query)[:2] == ["args.service", "canary.hash"]


def test_unknown_arg_names_it_and_lists_the_known() -> None:
    with pytest.raises(TemplateError) as info:
        render('x{a="{{args.servce}}"}', CTX)
    message = str(info.value)
    assert "{{args.servce}}" in message
    assert "args.service" in message and "canary.hash" in message


def test_missing_stable_hash_is_a_clear_error() -> None:
    ctx = QueryContext(canary_hash="abc")
    with pytest.raises(TemplateError, match="stable revision"):
        render('x{r="{{stable.hash}}"}', ctx)
    with pytest.raises(TemplateError, match="stable revision"):
        ctx.for_stable()


def test_for_stable_swaps_the_canary_hash() -> None:
    assert render('x{r="{{canary.hash}}"}', CTX.for_stable()) == 'x{r="def456"}'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('x"} or vector(1) #', 'x\\"} or vector(1) #'),
        ("a\\b", "a\\\\b"),
        ("line\nbreak", "line\\nbreak"),
        ("tab\there\r", "tab\\there\\r"),
        ("bell\x07", "bell\\x07"),
        ("ünïcode", "ünïcode"),
    ],
)
def test_escape_table(value: str, expected: str) -> None:
    assert escape_string(value) == expected


def test_single_quoted_strings_escape_their_own_quote() -> None:
    ctx = CTX.with_args({"v": "it's\""})
    assert render("x{a='{{args.v}}'}", ctx) == "x{a='it\\'s\"'}"


def test_injection_stays_inside_the_matcher() -> None:
    ctx = CTX.with_args({"service": 'x"} or vector(1) #'})
    rendered = render('sum(up{service="{{args.service}}"})', ctx)
    assert rendered == 'sum(up{service="x\\"} or vector(1) #"})'


def test_outside_a_string_only_plain_tokens_are_allowed() -> None:
    assert render("rate(x[{{args.window}}])", CTX) == "rate(x[5m])"
    with pytest.raises(TemplateError, match="outside a quoted string"):
        render("rate(x[{{args.w}}])", CTX.with_args({"w": "5m]) or vector(1"}))


def test_raw_strings_reject_backticks() -> None:
    assert render("x{a=`{{args.v}}`}", CTX.with_args({"v": 'a"b'})) == 'x{a=`a"b`}'
    with pytest.raises(TemplateError, match="raw"):
        render("x{a=`{{args.v}}`}", CTX.with_args({"v": "a`b"}))


def test_a_placeholder_after_an_escaped_quote_is_still_inside_the_string() -> None:
    assert render('x{a="q\\"{{args.v}}"}', CTX.with_args({"v": '"'})) == 'x{a="q\\"\\""}'


@given(st.text(max_size=40))
def test_any_value_round_trips_inside_one_string(value: str) -> None:
    rendered = render('up{job="{{args.v}}"}', CTX.with_args({"v": value}))
    assert rendered.startswith('up{job="') and rendered.endswith('"}')
    literal = rendered[len("up{job=") : -1]
    # Go's and Python's escapes agree for the ones we emit: the string decodes to the value
    # and nothing of the value leaked outside it.
    assert ast.literal_eval(literal) == value
