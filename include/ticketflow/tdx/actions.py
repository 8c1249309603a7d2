"""What each queue action does to one TDX ticket, split so that it can be done exactly once.

Every action first `plan`s with read calls only (that is all a dry run does),
then `apply`s the plan. `already_done` looks at the ticket to tell whether a
plan whose outcome was lost (a crash, a timeout) took effect: comments carry a
hidden marker with the action id; assets, status and assignment are visible on
the ticket itself.
"""

from __future__ import annotations

import abc
import html
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ticketflow.tdx.client import TdxClient
from ticketflow.tdx.config import ActionSpec
from ticketflow.tdx.identifiers import Identifier, extract_identifiers, plain_text

#: TDX's component type of an asset among a ticket's configuration items.
ASSET_ITEM_TYPE = 27


def marker(action_id: str) -> str:
    """Hidden in every comment Ticketflow posts, so a lost answer can be checked in the feed."""
    return f"<!-- ticketflow-action:{action_id} -->"


def comment_body(text: str, rich_html: bool, action_id: str) -> str:
    """Comments go out as rich HTML so the marker stays hidden; plain text is escaped, line breaks kept."""
    body = text if rich_html else html.escape(text, quote=False).replace("\n", "<br>")
    return f"{body}{marker(action_id)}"


class TicketView:
    """One ticket as the actions see it; each read is made once, and only if some action needs it."""

    def __init__(self, client: TdxClient, ticket_id: int, row: dict[str, Any]):
        self.client, self.ticket_id, self.row = client, ticket_id, row

    @cached_property
    def ticket(self) -> dict:
        return self.client.ticket(self.ticket_id)

    @cached_property
    def feed(self) -> list[dict]:
        return self.client.feed(self.ticket_id)

    @cached_property
    def asset_ids(self) -> set[int]:
        items = self.client.ticket_assets(self.ticket_id)
        return {item.get("BackingItemID") or item["ID"] for item in items
                if item.get("BackingItemType", ASSET_ITEM_TYPE) == ASSET_ITEM_TYPE}

    def reread(self) -> None:
        """Forget what was read: the next look sees TDX as it is now."""
        for name in ("ticket", "feed", "asset_ids"):
            self.__dict__.pop(name, None)

    def has_marker(self, action_id: str) -> bool:
        return any(marker(action_id) in (entry.get("Body") or "") for entry in self.feed)


@dataclass
class Plan:
    """What an action would do to one ticket; `detail` is kept in the log so a retry can finish it."""

    needed: bool
    description: str
    detail: dict[str, Any] = field(default_factory=dict)
    summary_line: str | None = None


class Action(abc.ABC):
    """Base of the queue actions: a spec, and how to apply a plan and tell whether it took effect."""

    def __init__(self, spec: ActionSpec):
        self.spec = spec
        self.options = spec.options

    @property
    def action_id(self) -> str:
        return self.spec.action_id

    @abc.abstractmethod
    def apply(self, view: TicketView, plan: Plan) -> None:
        """Do the plan in TDX."""

    @abc.abstractmethod
    def already_done(self, view: TicketView, plan: Plan) -> bool:
        """Whether TDX shows the plan done, read afresh (its outcome may have been lost)."""


class Step(Action):
    """An action of the configured list before the summary: it plans from the ticket alone."""

    @abc.abstractmethod
    def plan(self, view: TicketView) -> Plan:
        """What the action would do to this ticket, from read calls only."""


class _FeedAction(Action):
    """Actions that post one feed entry; done when the entry with the marker is in the feed."""

    @abc.abstractmethod
    def feed_entry(self, plan: Plan) -> dict:
        """The body of `POST feed`, marker included."""

    def marked_id(self, plan: Plan) -> str:
        """The action id the entry's marker carries."""
        return self.action_id

    def apply(self, view, plan):
        view.client.post_feed(view.ticket_id, self.feed_entry(plan))

    def already_done(self, view, plan):
        view.reread()
        return view.has_marker(self.marked_id(plan))


class CommentAction(_FeedAction, Step):
    def plan(self, view):
        options = self.options
        kind = "private" if options["is_private"] else "public"
        return Plan(True, f"post a {kind} comment: {options['comment_text'][:80]!r}")

    def feed_entry(self, plan):
        options = self.options
        return {"Comments": comment_body(options["comment_text"], options["is_rich_html"], self.action_id),
                "IsPrivate": options["is_private"], "IsRichHtml": True,
                "IsCommunication": options["is_communication"], "Notify": options["notify"],
                "NewStatusID": options["new_status_id"], "CascadeStatus": options["cascade_status"]}


class StatusChangeAction(_FeedAction, Step):
    """TDX changes a ticket's status through a feed entry with `NewStatusID`."""

    def _label(self) -> str:
        return self.options["status_name"] or f"status {self.options['new_status_id']}"

    def plan(self, view):
        if view.ticket.get("StatusID") == self.options["new_status_id"]:
            return Plan(False, f"already in {self._label()}")
        return Plan(True, f"change the status to {self._label()}", summary_line=f"Changed status to {self._label()}")

    def feed_entry(self, plan):
        options = self.options
        return {"Comments": comment_body(options["comment_text"], False, self.action_id),
                "IsPrivate": options["is_private"], "IsRichHtml": True, "IsCommunication": False,
                "Notify": options["notify"], "NewStatusID": options["new_status_id"], "CascadeStatus": False}


class AssignmentAction(Step):
    """Sets the responsible person or group with a JSON Patch; repeating it changes nothing."""

    def _changes(self) -> dict[str, Any]:
        if "responsible_uid" in self.options:
            return {"ResponsibleUid": self.options["responsible_uid"]}
        return {"ResponsibleGroupID": self.options["responsible_group_id"]}

    def _label(self) -> str:
        return self.options["label"] or next(iter(self._changes().values()))

    def _matches(self, ticket: dict) -> bool:
        return all(ticket.get(name) == value for name, value in self._changes().items())

    def plan(self, view):
        if self._matches(view.ticket):
            return Plan(False, f"already assigned to {self._label()}")
        return Plan(True, f"assign to {self._label()}", summary_line=f"Assigned to {self._label()}")

    def apply(self, view, plan):
        view.client.update_ticket(view.ticket_id, self._changes())

    def already_done(self, view, plan):
        view.reread()
        return self._matches(view.ticket)


class AddAssetAction(Step):
    """Adds the computers a ticket is about, in three phases (the seed's AddAssetAction).

    1. Names and serials in the title and description, each verified by an
       exact match in the asset search.
    2. If none matched: the same in the ticket's conversation (Ticketflow's own
       comments excluded).
    3. If no identifier was found at all: the requestor's asset, if they own
       exactly one (skipped when the ticket already has assets and
       `skip_if_requestor_asset_exists`).
    """

    def _filters(self) -> dict[str, Any]:
        options, filters = self.options, {}
        if options["active_status_only"]:
            filters["StatusIDs"] = options["active_status_ids"]
        if options["computer_form_id"]:
            filters["FormIDs"] = [options["computer_form_id"]]
        return filters

    def _acceptable(self, asset: dict) -> bool:
        options = self.options
        if options["active_status_only"] and asset.get("StatusID") not in options["active_status_ids"]:
            return False
        return not options["computer_form_id"] or asset.get("FormID") == options["computer_form_id"]

    def _verify(self, view: TicketView, ident: Identifier) -> dict | None:
        """The one asset whose name (or serial) is exactly the identifier, or None."""
        if ident.kind == "name":
            found = view.client.search_assets(SearchText=ident.value, MaxResults=25, **self._filters())
            exact = [a for a in found if (a.get("Name") or "").casefold() == ident.value.casefold()]
        else:
            found = view.client.search_assets(SerialLike=ident.value, MaxResults=25, **self._filters())
            exact = [a for a in found if (a.get("SerialNumber") or "").casefold() == ident.value.casefold()]
        exact = [a for a in exact if self._acceptable(a)]
        return exact[0] if len(exact) == 1 else None

    def _matches(self, view: TicketView, sources: list[tuple[str, str]]) -> tuple[int, list[dict]]:
        """(identifiers found, verified assets with their reasons) over (where, text) sources."""
        seen, matched = set(), []
        for where, text in sources:
            for ident in extract_identifiers(text):
                if ident.value.casefold() in seen:
                    continue
                seen.add(ident.value.casefold())
                if asset := self._verify(view, ident):
                    what = "Computer name" if ident.kind == "name" else "Serial number"
                    matched.append({"id": asset["ID"], "name": asset.get("Name") or ident.value,
                                    "identifier": ident.value, "reason": f"{what} found in {where}"})
        return len(seen), matched

    def plan(self, view):
        ticket = view.ticket
        found, matched = self._matches(view, [("ticket title", ticket.get("Title") or ""),
                                              ("ticket description", plain_text(ticket.get("Description")))])
        phase = 1
        if not matched:
            conversation = [plain_text(e.get("Body")) for e in view.feed
                            if "ticketflow-action:" not in (e.get("Body") or "")]
            more, matched = self._matches(view, [("ticket conversation", text) for text in conversation])
            found, phase = found + more, 2
        if not matched and not found:
            phase = 3
            if self.options["skip_if_requestor_asset_exists"] and view.asset_ids:
                return Plan(False, "no identifiers found; the ticket already has assets", {"phase": 3})
            owned = [a for a in view.client.search_assets(OwningCustomerIDs=[ticket.get("RequestorUid")],
                                                          MaxResults=2, **self._filters())
                     if self._acceptable(a)] if ticket.get("RequestorUid") else []
            if len(owned) != 1:
                return Plan(False, f"no identifiers found; the requestor owns {len(owned) or 'no'}"
                                   f"{'+' if len(owned) > 1 else ''} assets", {"phase": 3})
            matched = [{"id": owned[0]["ID"], "name": owned[0].get("Name") or str(owned[0]["ID"]),
                        "identifier": None, "reason": "Requestor's only asset"}]
        new, unique_ids = [], set()
        for asset in matched:
            if asset["id"] not in view.asset_ids and asset["id"] not in unique_ids:
                unique_ids.add(asset["id"])
                new.append(asset)
        new = new[: self.options["max_assets_to_add"]]
        if not new:
            return Plan(False, f"{found} identifier(s) found, nothing new to add", {"phase": phase})
        names = ", ".join(a["name"] for a in new)
        reasons = "; ".join(dict.fromkeys(a["reason"] for a in new))
        line = f"Added {len(new)} asset{'s' if len(new) > 1 else ''}: {names}. Reason: {reasons}"
        return Plan(True, f"add {names} ({reasons})", {"phase": phase, "assets": new},
                    line if self.options["add_summary_comment"] else None)

    def apply(self, view, plan):
        for asset in plan.detail["assets"]:
            view.client.add_asset(view.ticket_id, asset["id"])

    def already_done(self, view, plan):
        view.reread()
        return {a["id"] for a in plan.detail["assets"]} <= view.asset_ids


class SummaryCommentAction(_FeedAction):
    """One cumulative comment listing what the other actions did (their summary lines), numbered."""

    def summary(self, lines: list[str]) -> Plan:
        options = self.options
        if not lines and options["skip_if_empty"]:
            return Plan(False, "nothing to summarize")
        numbered = [f"{i}. {line}" for i, line in enumerate(lines, 1)] or ["No changes were needed."]
        text = options["comment_prefix"] + options["separator"] * 2 + options["separator"].join(numbered)
        return Plan(True, f"post the summary of {len(lines)} action(s)", {"text": text})

    def marked_id(self, plan):
        return plan.detail["action_id"]  # a summary's id names what it covers

    def feed_entry(self, plan):
        return {"Comments": comment_body(plan.detail["text"], False, self.marked_id(plan)),
                "IsPrivate": self.options["is_private"], "IsRichHtml": True, "IsCommunication": False,
                "Notify": [], "NewStatusID": 0, "CascadeStatus": False}


ACTION_TYPES: dict[str, type[Action]] = {
    "comment": CommentAction,
    "status_change": StatusChangeAction,
    "assignment": AssignmentAction,
    "add_asset": AddAssetAction,
    "summary_comment": SummaryCommentAction,
}


def build(spec: ActionSpec) -> Action:
    return ACTION_TYPES[spec.type](spec)


def build_step(spec: ActionSpec) -> Step:
    """One of the queue's steps (the configuration keeps the summary apart from them)."""
    action = build(spec)
    if not isinstance(action, Step):
        raise TypeError(f"action {spec.action_id} is a {spec.type}, not a step")
    return action


def build_summary(spec: ActionSpec) -> SummaryCommentAction:
    action = build(spec)
    if not isinstance(action, SummaryCommentAction):
        raise TypeError(f"action {spec.action_id} is a {spec.type}, not a summary_comment")
    return action
