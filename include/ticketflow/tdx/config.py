"""The TDX queue's action list, read from a YAML or JSON file and validated before anything runs.

    batch_size: 100            # tickets per mapped task
    actions:
      - type: add_asset        # comment | status_change | assignment | add_asset | summary_comment
        version: v1            # bump it to run the action again on every ticket
        when:                  # optional: only tickets whose report row matches every column
          StatusName: [New, Open]
        max_assets_to_add: 10  # the type's own options; unknown keys are errors
      - type: summary_comment  # at most one, and always last

An action's id is `{type}:{hash}:{version}`, the hash being SHA-256 of its
type and options with defaults filled in: changing an option runs the action
again, writing a default out explicitly does not. `when` is not part of the
hash: widening a condition reaches new tickets without repeating old ones.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

_SCALAR = {"type": ["string", "integer", "number", "boolean"]}
_NOTIFY = {"type": "array", "items": {"type": "string", "minLength": 1}}

#: Options of each action type, with their defaults (the seed's).
OPTION_SCHEMAS: dict[str, dict[str, Any]] = {
    "comment": {
        "comment_text": {"type": "string", "minLength": 1},
        "is_private": {"type": "boolean", "default": False},
        "is_rich_html": {"type": "boolean", "default": False},
        "is_communication": {"type": "boolean", "default": False},
        "notify": {**_NOTIFY, "default": []},
        "new_status_id": {"type": "integer", "minimum": 0, "default": 0},
        "cascade_status": {"type": "boolean", "default": False},
    },
    "status_change": {
        "new_status_id": {"type": "integer", "minimum": 1},
        "status_name": {"type": "string", "default": ""},
        "comment_text": {"type": "string", "minLength": 1, "default": "Status changed by Ticketflow."},
        "is_private": {"type": "boolean", "default": True},
        "notify": {**_NOTIFY, "default": []},
    },
    "assignment": {
        "responsible_uid": {"type": "string", "minLength": 1},
        "responsible_group_id": {"type": "integer", "minimum": 1},
        "label": {"type": "string", "default": ""},
    },
    "add_asset": {
        "add_summary_comment": {"type": "boolean", "default": True},
        "max_assets_to_add": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
        "skip_if_requestor_asset_exists": {"type": "boolean", "default": True},
        "active_status_only": {"type": "boolean", "default": True},
        "active_status_ids": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "default": [1]},
        "computer_form_id": {"type": ["integer", "null"], "default": None},
    },
    "summary_comment": {
        "comment_prefix": {"type": "string", "default": "\N{ROBOT FACE} Automated Actions Summary"},
        "is_private": {"type": "boolean", "default": True},
        "skip_if_empty": {"type": "boolean", "default": True},
        "separator": {"type": "string", "default": "\n"},
    },
}

_REQUIRED = {"comment": ["comment_text"], "status_change": ["new_status_id"]}

FILE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["actions"],
    "properties": {
        "batch_size": {"type": "integer", "minimum": 1, "maximum": 1000},
        "actions": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"enum": sorted(OPTION_SCHEMAS)}},
                "allOf": [
                    {"if": {"properties": {"type": {"const": name}}},
                     "then": {"additionalProperties": False,
                              "required": _REQUIRED.get(name, []),
                              "properties": {
                                  "type": {"const": name},
                                  "version": {"type": "string", "pattern": r"^[A-Za-z0-9._-]{1,20}$"},
                                  "when": {"type": "object", "minProperties": 1,
                                           "additionalProperties": {"anyOf": [
                                               _SCALAR, {"type": "array", "minItems": 1, "items": _SCALAR}]}},
                                  **options}}}
                    for name, options in OPTION_SCHEMAS.items()
                ],
            },
        },
    },
}


class ConfigError(ValueError):
    """The action file cannot be used; the message names the file and the offending entry."""


@dataclass(frozen=True)
class ActionSpec:
    """One configured action: its type, options (defaults filled in), version and condition."""

    type: str
    options: dict[str, Any]
    version: str = "v1"
    when: dict[str, list[str]] = field(default_factory=dict)

    @property
    def action_hash(self) -> str:
        canonical = json.dumps({"type": self.type, "options": self.options}, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def action_id(self) -> str:
        return f"{self.type}:{self.action_hash[:12]}:{self.version}"

    def applies_to(self, row: dict[str, Any]) -> bool:
        """Whether the ticket's report row meets the condition (values compared as text)."""
        return all(str(row.get(column)) in accepted for column, accepted in self.when.items())


@dataclass(frozen=True)
class QueueConfig:
    actions: tuple[ActionSpec, ...]
    batch_size: int = 100

    @property
    def summary(self) -> ActionSpec | None:
        last = self.actions[-1]
        return last if last.type == "summary_comment" else None

    @property
    def steps(self) -> tuple[ActionSpec, ...]:
        """Every action but the summary, in file order."""
        return self.actions[:-1] if self.summary else self.actions

    @property
    def condition_columns(self) -> set[str]:
        return {column for spec in self.actions for column in spec.when}


#: JSON Schema's "integer" also takes 50.0, which the actions cannot use: here it means a whole number written as one.
_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool)))


def _where(error: jsonschema.ValidationError) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return path.lstrip(".") or "(top level)"


def parse_config(document: Any, source: str = "configuration") -> QueueConfig:
    """Validate a parsed document; every problem is reported at once, each with its place."""
    errors = sorted(_Validator(FILE_SCHEMA).iter_errors(document),
                    key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ConfigError(f"{source}: " + "; ".join(f"{_where(e)}: {e.message}" for e in errors))
    specs = []
    for item in document["actions"]:
        schema = OPTION_SCHEMAS[item["type"]]
        options = {name: item.get(name, rule.get("default")) for name, rule in schema.items()}
        if item["type"] == "assignment":
            options = {k: v for k, v in options.items() if k in item or k == "label"}
        when = {column: [str(v) for v in (value if isinstance(value, list) else [value])]
                for column, value in item.get("when", {}).items()}
        specs.append(ActionSpec(item["type"], options, item.get("version", "v1"), when))
    problems = [f"actions[{index}].when.{column}: {value!r} is a YAML boolean (yes/no/on/off/true/false);"
                f" quote it to match the report's text, such as \"Yes\""
                for index, item in enumerate(document["actions"]) for column, values in item.get("when", {}).items()
                for value in (values if isinstance(values, list) else [values]) if isinstance(value, bool)]
    for index, spec in enumerate(specs):
        if spec.type == "summary_comment" and index != len(specs) - 1:
            problems.append(f"actions[{index}]: summary_comment must be the last action")
        names_one = ("responsible_uid" in spec.options) != ("responsible_group_id" in spec.options)
        if spec.type == "assignment" and not names_one:
            problems.append(f"actions[{index}]: assignment needs exactly one of responsible_uid, responsible_group_id")
    ids = [spec.action_id for spec in specs]
    problems += [f"actions[{i}]: same action as an earlier one ({ids[i]}); change its version"
                 for i in range(len(ids)) if ids[i] in ids[:i]]
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
    return QueueConfig(tuple(specs), document.get("batch_size", 100))


def load_config(path: Path) -> QueueConfig:
    """Read and validate the action file (`.yaml`, `.yml` or `.json`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the TDX action file ({exc.strerror})") from None
    try:
        document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
    return parse_config(document, str(path))
