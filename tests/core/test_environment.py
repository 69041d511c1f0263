"""The one list of offline switches: what --offline turns on and what failures are explained by."""

import os

from langbuild.core.environment import HUB_OFFLINE_VARIABLES, OFFLINE_VARIABLES, go_offline, is_offline, truthy
from langbuild.evaluation.harness import hub_needed_message


def test_is_offline_and_hub_message(monkeypatch):
    for var in OFFLINE_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    assert not is_offline()
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    assert not is_offline()
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    assert is_offline()
    message = hub_needed_message("belebele_nya_Latn")
    assert "\n" not in message
    assert message.startswith("belebele_nya_Latn:") and "Hugging Face hub" in message and "HF_DATASETS_OFFLINE is set" in message
    assert "online" in message and "local" in message


def test_several_switches_are_named_in_one_readable_line(monkeypatch):
    for var in OFFLINE_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LANGBUILD_OFFLINE", "yes")
    assert "(HF_HUB_OFFLINE and LANGBUILD_OFFLINE are set)" in hub_needed_message("xnli_sw")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "on")
    assert "(HF_HUB_OFFLINE, HF_DATASETS_OFFLINE and LANGBUILD_OFFLINE are set)" in hub_needed_message("xnli_sw")


def test_go_offline_switches_on_what_the_libraries_read(monkeypatch):
    for var in OFFLINE_VARIABLES:
        monkeypatch.setenv(var, "0")  # setenv, not delenv: monkeypatch then also undoes what go_offline sets
    assert not is_offline()
    go_offline()
    assert all(os.environ[var] == "1" for var in HUB_OFFLINE_VARIABLES)
    assert is_offline()


def test_truthy_reads_switches_as_the_hugging_face_libraries_do():
    assert all(truthy(value) for value in ("1", "true", "YES", " on "))
    assert not any(truthy(value) for value in (None, "", "0", "false", "no", "off"))
