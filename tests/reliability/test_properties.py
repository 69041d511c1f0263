"""Property-based tests (hypothesis): the config parser and the tokenizer round trip.

The config properties cover every setting in the schema: a valid value survives langbuild.toml and
--set unchanged, and no input whatsoever makes the parser fail with anything but a ConfigError
(which the CLI prints as one line). The tokenizer properties check decode(encode(x)) == x on
arbitrary Unicode for langbuild's SentencePiece settings and for the extended tokenizers it writes.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
import tomlkit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from langbuild.core.config import (
    CONFIG_NAME,
    SCHEMA,
    Setting,
    coerce,
    load_config,
    parse_cli_value,
    set_value,
    validate_document,
)
from langbuild.core.errors import ConfigError
from langbuild.project.scaffold import template_dir

KEYS = [f"{section}.{name}" for section, items in SCHEMA.items() for name in items]
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)  # any Unicode a file can hold
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _number_bounds(setting: Setting, integer: bool) -> dict:
    low = setting.minimum if setting.minimum is not None else -1e9
    high = setting.maximum if setting.maximum is not None else 1e9
    return {"min_value": math.ceil(low), "max_value": math.floor(high)} if integer else {"min_value": low, "max_value": high}


def valid_values(setting: Setting) -> st.SearchStrategy:
    """Every value the schema accepts for a setting."""
    kind = setting.kind
    if kind == "list[str]":
        return st.lists(st.sampled_from(setting.choices) if setting.choices else TEXT, max_size=4)
    if setting.choices:
        return st.sampled_from(setting.choices)
    if kind is bool:
        return st.booleans()
    if kind is int:
        return st.integers(**_number_bounds(setting, True))
    if kind == "int|auto":
        return st.one_of(st.just("auto"), st.integers(**_number_bounds(setting, True)))
    if kind == "int|table":
        number = st.integers(**_number_bounds(setting, True))
        return st.one_of(number, st.dictionaries(TEXT, number, max_size=3))
    if kind is float:
        return st.floats(allow_nan=False, allow_infinity=False, **_number_bounds(setting, False))
    return TEXT


@st.composite
def key_and_valid_value(draw):
    key = draw(st.sampled_from(KEYS))
    section, _, name = key.partition(".")
    return key, draw(valid_values(SCHEMA[section][name]))


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=8,
)


@PROPERTY
@given(key_and_valid_value())
def test_a_valid_value_survives_langbuild_toml_unchanged(item):
    key, value = item
    doc = tomlkit.parse((template_dir() / CONFIG_NAME).read_text(encoding="utf-8"))
    set_value(doc, key, value)
    reread = validate_document(tomlkit.parse(tomlkit.dumps(doc)).unwrap(), "langbuild.toml")
    assert reread.get(key) == coerce(key, value)


@PROPERTY
@given(key_and_valid_value())
def test_a_valid_value_written_as_a_toml_literal_survives_set(item):
    key, value = item
    if isinstance(value, dict):  # a table on the command line is an inline table: { name = 3 }
        table = tomlkit.inline_table()
        table.update(value)
        literal = table.as_string()
    else:
        literal = tomlkit.item(value).as_string()
    assert parse_cli_value(key, literal) == coerce(key, value)


@PROPERTY
@given(st.sampled_from(KEYS), TEXT)
def test_any_set_text_is_a_value_or_one_config_error(key, text):
    try:
        value = parse_cli_value(key, text)
    except ConfigError:
        return
    assert coerce(key, value) == value  # what it returns is itself valid


@PROPERTY
@given(st.dictionaries(st.sampled_from([*SCHEMA, "bogus"]) | TEXT,
                       st.dictionaries(st.sampled_from(KEYS).map(lambda k: k.split(".")[1]) | TEXT, JSONISH, max_size=4)
                       | JSONISH, max_size=4))
def test_any_document_is_settings_or_one_config_error(document):
    try:
        config = validate_document(document, "langbuild.toml")
    except ConfigError:
        return
    for key in KEYS:
        assert coerce(key, config.get(key)) == config.get(key)


@PROPERTY
@given(TEXT)
def test_arbitrary_text_in_langbuild_toml_is_settings_or_one_config_error(text):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / CONFIG_NAME
        path.write_text(text, encoding="utf-8")
        try:
            load_config(path)
        except ConfigError:
            pass


# ---------------------------------------------------------------- tokenizer round trip

@pytest.fixture(scope="module")
def sentencepiece_models(tmp_path_factory):
    import sentencepiece as spm

    from langbuild.tokenization.sentencepiece import sentencepiece_settings
    from tests.tiny import chichewa_split, write_lines

    folder = tmp_path_factory.mktemp("spm")
    sample = write_lines(folder / "sample.txt", chichewa_split(1)[0])
    models = {}
    for model_type in ("unigram", "bpe"):
        spm.SentencePieceTrainer.train(**sentencepiece_settings(sample, folder / model_type, model_type, 400))
        models[model_type] = spm.SentencePieceProcessor(model_file=str(folder / f"{model_type}.model"))
    return models


ROUND_TRIP_TEXT = st.one_of(TEXT, st.text(st.sampled_from("abcdeiklmnoóstuwyz ŵ\n\t'.,!?0123456789"), max_size=80))


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_sentencepiece_settings_round_trip_any_text(sentencepiece_models, model_type):
    model = sentencepiece_models[model_type]

    @PROPERTY
    @given(ROUND_TRIP_TEXT)
    def round_trip(text):
        assert model.decode(model.encode(text)) == text

    round_trip()


@pytest.mark.parametrize("family", ["llama-spm", "gpt2-bytelevel"])
def test_extended_tokenizer_round_trips_any_text(finished_projects, family):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(finished_projects[family] / "extend/model"))

    @PROPERTY
    @given(ROUND_TRIP_TEXT)
    def round_trip(text):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids, clean_up_tokenization_spaces=False) == text

    round_trip()
