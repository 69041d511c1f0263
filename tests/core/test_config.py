"""langbuild.toml: the schema, the shipped template, --set parsing, validation and comment-keeping edits."""

from __future__ import annotations

import math

import pytest
import tomlkit

from langbuild.core.config import (
    CONFIG_NAME,
    SCHEMA,
    check_required,
    coerce,
    defaults,
    load_config,
    parse_cli_value,
    read_document,
    set_value,
    validate_document,
)
from langbuild.core.errors import ConfigError, LangbuildError
from langbuild.project.scaffold import template_dir

TEMPLATE = template_dir() / CONFIG_NAME


def _template_doc() -> tomlkit.TOMLDocument:
    return tomlkit.parse(TEMPLATE.read_text(encoding="utf-8"))


def _schema_keys() -> set[str]:
    return {f"{section}.{name}" for section, items in SCHEMA.items() for name in items}


def _template_keys() -> set[str]:
    doc = _template_doc().unwrap()
    return {f"{section}.{name}" for section, table in doc.items() for name in table}


# --- the shipped template against the schema ----------------------------------------------------


def test_every_schema_key_is_in_the_template():
    missing = _schema_keys() - _template_keys()
    assert not missing, f"templates/project/langbuild.toml lacks {sorted(missing)}"


def test_every_template_key_is_in_the_schema():
    unknown = _template_keys() - _schema_keys()
    assert not unknown, f"templates/project/langbuild.toml has settings the schema lacks: {sorted(unknown)}"


def test_template_sections_follow_the_schema_order():
    assert list(_template_doc().unwrap()) == list(SCHEMA)


def test_template_parses_and_validates_with_the_schema_defaults():
    config = validate_document(_template_doc().unwrap(), str(TEMPLATE))
    assert config.values == defaults().values  # the template ships the defaults, nothing else


def test_template_is_missing_only_the_required_answers():
    config = load_config(TEMPLATE)
    with pytest.raises(ConfigError, match="project.language"):
        check_required(config, "t")
    config.values["project"]["language"] = "nya"
    with pytest.raises(ConfigError, match="corpus.paths"):
        check_required(config, "t")
    config.values["corpus"]["paths"] = ["data.txt"]
    check_required(config, "t")  # select.candidates has a default


def test_template_documents_every_setting_in_a_comment():
    text = TEMPLATE.read_text(encoding="utf-8")
    for section, items in SCHEMA.items():
        for setting in items.values():
            assert f"# {setting.help}" in text, f"[{section}] comment missing: {setting.help}"


def test_every_default_passes_its_own_validation():
    for key in _schema_keys():
        section, name = key.split(".")
        setting = SCHEMA[section][name]
        if setting.required and setting.default in ("", []):
            continue
        assert coerce(key, setting.default) == setting.default


# --- parse_cli_value: the text of --set and 'config set' -----------------------------------------


@pytest.mark.parametrize(
    "key, text, expected",
    [
        ("train.max_steps", "30", 30),
        ("train.max_steps", "1_000", 1000),
        ("train.learning_rate", "0.001", 0.001),
        ("train.learning_rate", "1e-4", 1e-4),
        ("train.learning_rate", "1", 1.0),  # an int is a fine float
        ("project.trust_remote_code", "true", True),
        ("project.trust_remote_code", "false", False),
        ("project.language", "nya", "nya"),  # a bare word
        ('project.language', '"nya"', "nya"),  # a TOML string
        ("project.name", "123", "123"),  # digits stay text for a text setting
        ("project.name", "true", "true"),
        ("project.name", "my project", "my project"),
        ("corpus.paths", '["a.txt", "b.txt"]', ["a.txt", "b.txt"]),
        ("corpus.paths", '["a","b"]', ["a", "b"]),
        ("corpus.paths", "a.txt,b.txt", ["a.txt", "b.txt"]),
        ("corpus.paths", "a.txt, b.txt ,", ["a.txt", "b.txt"]),
        ("corpus.paths", "data/*.txt", ["data/*.txt"]),
        ("corpus.paths", "a", ["a"]),
        ("corpus.valid_paths", "[]", []),
        ("tokenizer.model_type", "bpe", "bpe"),
        ("extend.init", "subword-mean", "subword-mean"),
    ],
)
def test_parse_cli_value(key, text, expected):
    value = parse_cli_value(key, text)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    "key, text, fragment",
    [
        ("train.max_steps", "abc", "must be int"),
        ("train.max_steps", "1.5", "must be int"),
        ("train.max_steps", "true", "must be int"),
        ("train.max_steps", '"3"', "must be int"),
        ("train.learning_rate", "fast", "must be float"),
        ("train.learning_rate", "nan", "must be float"),
        ("train.learning_rate", "inf", "must be float"),
        ("corpus.valid_fraction", "nan", "must be float"),
        ("project.trust_remote_code", "yes", "must be bool"),
        ("project.trust_remote_code", "1", "must be bool"),
        ("corpus.paths", "[1, 2]", "must be list[str]"),
        ("train.max_steps", "-1", "at least 0"),
        ("train.seq_len", "4", "at least 8"),
        ("corpus.valid_fraction", "0.9", "at most 0.5"),
        ("corpus.valid_fraction", "0", "at least 0.001"),
        ("tokenizer.model_type", "wordpiece", "must be one of unigram, bpe"),
        ("extend.init", "zeros", "must be one of subword-mean, mean, multivariate, script, random"),
    ],
)
def test_parse_cli_value_rejects_bad_values_naming_the_key(key, text, fragment):
    with pytest.raises(ConfigError) as info:
        parse_cli_value(key, text)
    message = str(info.value)
    assert f"'{key}'" in message and fragment in message
    assert "\n" not in message


@pytest.mark.parametrize("key", ["nosuch.key", "train.nosuch", "train", "train.", ".max_steps", ""])
def test_unknown_keys_are_config_errors_naming_the_key(key):
    with pytest.raises(ConfigError, match="unknown setting") as info:
        parse_cli_value(key, "1")
    assert f"'{key}'" in str(info.value)


def test_unknown_key_lists_what_the_section_has():
    with pytest.raises(ConfigError, match="max_steps"):
        parse_cli_value("train.max_step", "3")


def test_config_errors_are_langbuild_errors_with_usage_exit_code():
    assert issubclass(ConfigError, LangbuildError)
    assert ConfigError.exit_code == 2


# --- validating whole documents -------------------------------------------------------------------


def _validate(text: str):
    return validate_document(tomlkit.parse(text).unwrap(), "x/langbuild.toml")


def test_user_values_override_defaults_and_are_typed():
    config = _validate('[train]\nmax_steps = 12\nlearning_rate = 1\n[corpus]\npaths = "one.txt"\n')
    assert config.get("train.max_steps") == 12
    assert config.get("train.learning_rate") == 1.0 and isinstance(config.get("train.learning_rate"), float)
    assert config.get("corpus.paths") == ["one.txt"]  # a single string is a one-item list
    assert config.get("train.seq_len") == SCHEMA["train"]["seq_len"].default


@pytest.mark.parametrize(
    "text, fragments",
    [
        ('[train]\nmax_steps = "abc"\n', ["train.max_steps", "must be int"]),
        ("[train]\nmax_steps = true\n", ["train.max_steps", "must be int"]),
        ("[train]\nmax_steps = 2.0\n", ["train.max_steps", "must be int"]),
        ("[train]\nmax_steps = -5\n", ["train.max_steps", "at least 0"]),
        ("[train]\nlearning_rate = nan\n", ["train.learning_rate", "must be float"]),
        ("[corpus]\nvalid_fraction = 0.75\n", ["corpus.valid_fraction", "at most 0.5"]),
        ('[tokenizer]\nmodel_type = "wordpiece"\n', ["tokenizer.model_type", "one of unigram, bpe"]),
        ("[corpus]\npaths = [1]\n", ["corpus.paths", "list[str]"]),
        ('[project]\ntrust_remote_code = "no"\n', ["project.trust_remote_code", "must be bool"]),
        ("[train]\nmax_stepz = 3\n", ["train.max_stepz", "unknown setting"]),
        ("[training]\nmax_steps = 3\n", ["[training]", "unknown section"]),
        ('language = "nya"\n', ["[language]", "unknown section"]),
        ("train = 3\n", ["'train'", "must be a table"]),
    ],
)
def test_invalid_documents_raise_config_errors_naming_the_key(text, fragments):
    with pytest.raises(ConfigError) as info:
        _validate(text)
    message = str(info.value)
    assert message.startswith("x/langbuild.toml: ")
    for fragment in fragments:
        assert fragment in message
    assert "\n" not in message


def test_config_get_of_an_unknown_key_fails():
    with pytest.raises(ConfigError, match="unknown setting 'train.nosuch'"):
        defaults().get("train.nosuch")


def test_subset_takes_sections_and_single_keys():
    config = defaults()
    subset = config.subset(["train", "project.seed"])
    assert subset["project.seed"] == 0
    assert subset["train"] == config.section("train")
    subset["train"]["max_steps"] = -1  # a copy: fingerprints cannot change the config
    assert config.get("train.max_steps") == SCHEMA["train"]["max_steps"].default


# --- comment-keeping edits ------------------------------------------------------------------------


def test_set_value_keeps_comments_and_changes_only_that_line():
    original = TEMPLATE.read_text(encoding="utf-8")
    doc = tomlkit.parse(original)
    set_value(doc, "train.max_steps", 30)
    set_value(doc, "corpus.paths", ["data/*.txt", "more.jsonl"])
    edited = tomlkit.dumps(doc)
    before, after = original.splitlines(), edited.splitlines()
    assert len(before) == len(after)
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert changed == [("paths = []", 'paths = ["data/*.txt", "more.jsonl"]'), ("max_steps = 200", "max_steps = 30")]
    assert "# optimizer steps of continued pretraining" in edited
    again = validate_document(tomlkit.parse(edited).unwrap(), "t")
    assert again.get("train.max_steps") == 30
    assert again.get("corpus.paths") == ["data/*.txt", "more.jsonl"]


def test_set_value_round_trip_is_lossless_when_unchanged():
    original = TEMPLATE.read_text(encoding="utf-8")
    assert tomlkit.dumps(tomlkit.parse(original)) == original


def test_set_value_adds_a_missing_section():
    doc = tomlkit.parse("# my settings\n[project]\nlanguage = \"nya\" # the language\n")
    set_value(doc, "train.max_steps", 7)
    text = tomlkit.dumps(doc)
    assert text.startswith("# my settings\n[project]\nlanguage = \"nya\" # the language\n")
    assert validate_document(tomlkit.parse(text).unwrap(), "t").get("train.max_steps") == 7


def test_set_value_keeps_an_inline_comment_on_the_line():
    doc = tomlkit.parse("[train]\nmax_steps = 5  # short run\nseq_len = 64\n")
    set_value(doc, "train.max_steps", 9)
    text = tomlkit.dumps(doc)
    assert "seq_len = 64" in text
    assert validate_document(tomlkit.parse(text).unwrap(), "t").get("train.max_steps") == 9


# --- loading files --------------------------------------------------------------------------------


def test_load_config_reads_a_valid_file(tmp_path):
    path = tmp_path / CONFIG_NAME
    path.write_text('[project]\nlanguage = "nya"\n[train]\nmax_steps = 3\n', encoding="utf-8")
    config = load_config(path)
    assert config.get("project.language") == "nya" and config.get("train.max_steps") == 3


def test_load_config_broken_toml_is_one_line(tmp_path):
    path = tmp_path / CONFIG_NAME
    path.write_text('[project]\nlanguage = "nya\n[train]\nmax_steps = = 3\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and "not valid TOML" in message
    assert "\n" not in message


def test_load_config_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / CONFIG_NAME)
    message = str(info.value)
    assert "no langbuild.toml" in message and "langbuild init" in message
    assert "\n" not in message


def test_load_config_non_utf8(tmp_path):
    path = tmp_path / CONFIG_NAME
    path.write_bytes('[project]\nname = "caf\u00e9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and "not UTF-8" in message
    assert "\n" not in message


def test_load_config_accepts_a_byte_order_mark(tmp_path):
    path = tmp_path / CONFIG_NAME
    path.write_bytes(b"\xef\xbb\xbf" + TEMPLATE.read_bytes())  # as some Windows editors save it
    assert load_config(path).values == defaults().values
    assert "project" in read_document(path)


def test_defaults_cover_every_key():
    config = defaults()
    for key in _schema_keys():
        value = config.get(key)
        if isinstance(value, float):
            assert math.isfinite(value)


def test_the_template_is_what_the_schema_generates():
    from langbuild.core.settings_template import settings_template

    assert TEMPLATE.read_text(encoding="utf-8") == settings_template(), (
        "templates/project/langbuild.toml is out of date: run 'python -m langbuild.core.settings_template'"
    )


# --- rules between settings ------------------------------------------------------------------------


@pytest.mark.parametrize("changes, fragment", [
    ({"corpus.valid_values": ["Ruth"]}, "corpus.valid_field is empty"),
    ({"corpus.valid_field": "book"}, "corpus.valid_values is empty"),
    ({"train.early_stopping": 2}, "set train.eval_every too"),
    ({"train.launcher": "fsdp", "train.precision": "fp16", "train.replay_kl": 0.0}, "not fp16"),
    ({"train.launcher": "fsdp", "train.replay_kl": 1.0}, "train.replay_kl needs a whole teacher model"),
    ({"extend.init": "wechsel", "extend.dictionary": "d.txt"}, "needs extend.source_vectors, extend.target_vectors"),
    ({"extend.compare": ["focus", "wechsel"]}, "extend.init = wechsel needs"),
])
def test_each_rule_between_settings_refuses_its_combination_in_one_line(changes, fragment):
    from langbuild.core.config import broken_rules, check_rules

    config = defaults()
    assert broken_rules(config) == []
    for key, value in changes.items():
        section, _, name = key.partition(".")
        config.values[section][name] = value
    assert len(broken_rules(config)) == 1 and fragment in broken_rules(config)[0]
    with pytest.raises(ConfigError, match="^here: "):
        check_rules(config, "here")


def test_a_rule_is_kept_once_its_pair_is_set():
    from langbuild.core.config import broken_rules

    config = defaults()
    config.values["train"].update(early_stopping=2, eval_every=10)
    config.values["corpus"].update(valid_field="book", valid_values=["Ruth"])
    assert broken_rules(config) == []


def test_num_fewshot_is_a_number_or_a_table_of_task_numbers():
    from langbuild.core.config import coerce, parse_cli_value

    assert parse_cli_value("eval.num_fewshot", "3") == 3
    assert parse_cli_value("eval.num_fewshot", "{belebele_nya_Latn = 5, heldout-bpb = 0}") == {"belebele_nya_Latn": 5,
                                                                                               "heldout-bpb": 0}
    for bad, says in ((-1, "at least 0"), ({"xnli_sw": "five"}, "eval.num_fewshot.xnli_sw is 'five'"),
                      ({"xnli_sw": 65}, "from 0 to 64"), (2.5, "a whole number or a table")):
        with pytest.raises(ConfigError, match=says):
            coerce("eval.num_fewshot", bad)
