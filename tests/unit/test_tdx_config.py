"""The action file: validated on load with clear errors; action ids follow content and version."""

import json

import pytest

from ticketflow.settings import PROJECT_ROOT
from ticketflow.tdx.config import ConfigError, load_config, parse_config


def action_ids(*actions):
    return [spec.action_id for spec in parse_config({"actions": list(actions)}).actions]


def test_the_shipped_configuration_is_valid():
    config = load_config(PROJECT_ROOT / "config" / "tdx_actions.yaml")
    assert [spec.type for spec in config.actions] == ["add_asset", "summary_comment"]
    assert config.summary is config.actions[-1]


def test_action_id_is_type_hash_version_and_changes_with_content_or_version():
    [first] = action_ids({"type": "comment", "comment_text": "Hello"})
    kind, digest, version = first.split(":")
    assert (kind, len(digest), version) == ("comment", 12, "v1")
    assert action_ids({"type": "comment", "comment_text": "Hello"}) == [first]
    assert action_ids({"type": "comment", "comment_text": "Hello", "is_private": False}) == [first]  # a default
    assert action_ids({"type": "comment", "comment_text": "Hello World"})[0].split(":")[1] != digest
    assert action_ids({"type": "comment", "comment_text": "Hello", "version": "v2"}) == [f"comment:{digest}:v2"]
    assert action_ids({"type": "comment", "comment_text": "Hello", "when": {"StatusName": "New"}}) == [first]


def test_conditions_compare_report_values_as_text():
    [spec] = parse_config({"actions": [{"type": "comment", "comment_text": "x",
                                        "when": {"StatusName": ["New", "Open"], "PriorityID": 3}}]}).actions
    assert spec.applies_to({"StatusName": "Open", "PriorityID": 3})
    assert spec.applies_to({"StatusName": "New", "PriorityID": "3"})
    assert not spec.applies_to({"StatusName": "Closed", "PriorityID": 3})
    assert not spec.applies_to({"StatusName": "New"})


@pytest.mark.parametrize(("document", "message"), [
    ({}, "(top level): 'actions' is a required property"),
    ({"actions": []}, "actions: [] should be non-empty"),
    ({"actions": [{"type": "coment", "comment_text": "x"}]}, "actions[0].type: 'coment' is not one of"),
    ({"actions": [{"type": "comment"}]}, "actions[0]: 'comment_text' is a required property"),
    ({"actions": [{"type": "comment", "comment_text": "x", "colour": "red"}]},
     "Additional properties are not allowed ('colour' was unexpected)"),
    ({"actions": [{"type": "add_asset", "max_assets_to_add": 0}]},
     "actions[0].max_assets_to_add: 0 is less than the minimum of 1"),
    ({"actions": [{"type": "status_change", "new_status_id": "open"}]},
     "actions[0].new_status_id: 'open' is not of type 'integer'"),
    ({"batch_size": 50.0, "actions": [{"type": "add_asset", "max_assets_to_add": 2.0}]},
     "actions[0].max_assets_to_add: 2.0 is not of type 'integer'; batch_size: 50.0 is not of type 'integer'"),
    ({"actions": [{"type": "comment", "comment_text": "x", "when": {"NeedsLaptop": True, "Site": ["A", False]}}]},
     "actions[0].when.NeedsLaptop: True is a YAML boolean (yes/no/on/off/true/false); quote it"),
    ({"actions": [{"type": "summary_comment"}, {"type": "comment", "comment_text": "x"}]},
     "actions[0]: summary_comment must be the last action"),
    ({"actions": [{"type": "assignment"}]},
     "actions[0]: assignment needs exactly one of responsible_uid, responsible_group_id"),
    ({"actions": [{"type": "comment", "comment_text": "x"}, {"type": "comment", "comment_text": "x"}]},
     "actions[1]: same action as an earlier one"),
    ({"actions": [{"type": "comment", "comment_text": "x", "version": "v 1"}]}, "actions[0].version"),
    ({"actions": [{"type": "comment", "comment_text": "x", "when": {"StatusName": {"in": ["New"]}}}]},
     "actions[0].when.StatusName"),
])
def test_bad_configurations_are_refused_with_the_place_of_the_error(document, message):
    with pytest.raises(ConfigError) as refused:
        parse_config(document, "tdx_actions.yaml")
    assert str(refused.value).startswith("tdx_actions.yaml: ")
    assert message in str(refused.value)


def test_bad_files_name_the_file_and_the_problem(tmp_path):
    broken_yaml = tmp_path / "actions.yaml"
    broken_yaml.write_text("actions:\n  - type: comment\n   comment_text: x\n")
    with pytest.raises(ConfigError, match=r"actions.yaml: not valid YAML"):
        load_config(broken_yaml)
    broken_json = tmp_path / "actions.json"
    broken_json.write_text('{"actions": [')
    with pytest.raises(ConfigError, match=r"actions.json: not valid JSON"):
        load_config(broken_json)
    with pytest.raises(ConfigError, match=r"missing.yaml: cannot read the TDX action file"):
        load_config(tmp_path / "missing.yaml")
    good_json = tmp_path / "good.json"
    good_json.write_text(json.dumps({"batch_size": 10, "actions": [{"type": "comment", "comment_text": "Hi"}]}))
    assert load_config(good_json).batch_size == 10
