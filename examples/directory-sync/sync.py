#!/usr/bin/env python3
"""Keep a local copy of Muster's directory in sync from its event feed.

Reads every user and group once (remembering the first page's `asOf`), then follows
`GET /api/v1/events` from there with long polling, applying each event to a local JSON file:
users by id (as the API shows them: organization, effective roles, status), groups with their
members. The cursor is saved with the copy, so a restart resumes where it stopped; a 410 (events
no longer kept) starts over with a full read.

    MUSTER_URL=http://127.0.0.1:8080 MUSTER_TOKEN=mapp_... python3 sync.py --state directory.json

Standard library only. `--once` reads and applies what is there, then exits (for scripts and
tests); without it the program follows the feed until interrupted.
"""

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request


class Gone(Exception):
    """The feed no longer holds the events after our cursor."""


def get(base, token, path, params=None):
    url = f"{base}/api/v1{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    req = urllib.request.Request(url, headers={"authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as e:
        if e.code == 410:
            raise Gone() from e
        raise SystemExit(f"{url}: {e.code} {e.read().decode(errors='replace')}")


def pages(base, token, path, key):
    """Every item of a paged list, and the first page's asOf."""
    params, first_as_of = {"limit": 1000}, None
    while True:
        page = get(base, token, path, params)
        if first_as_of is None:
            first_as_of = page["asOf"]
        yield from ((first_as_of, item) for item in page[key])
        if not page.get("nextCursor"):
            if not page[key]:
                yield first_as_of, None
            return
        params["cursor"] = page["nextCursor"]


def full_read(base, token):
    """The whole directory, and the feed position to follow it from."""
    copy = {"users": {}, "groups": {}, "after": None}
    as_ofs = []
    for as_of, user in pages(base, token, "/users", "users"):
        as_ofs.append(as_of)
        if user:
            detail = get(base, token, f"/users/{user['id']}")
            copy["users"][user["id"]] = {
                "id": user["id"],
                "userName": user["userName"],
                "status": user["status"],
                "organization": detail["org"]["name"],
                "roles": sorted(r["name"] for r in detail["roles"]),
            }
    for as_of, group in pages(base, token, "/groups", "groups"):
        as_ofs.append(as_of)
        if group:
            detail = get(base, token, f"/groups/{group['id']}")
            copy["groups"][group["id"]] = {
                "id": group["id"],
                "displayName": group["displayName"],
                "members": sorted(m["id"] for m in detail["members"]),
            }
    # The smallest asOf: every change after it is in the feed after it.
    copy["after"] = min(as_ofs) if as_ofs else get(base, token, "/events/head")["seq"]
    return copy


def apply(copy, event):
    """Applies one event; events carry the resource's whole state, so replaying is harmless."""
    kind, data = event["type"], event["data"]
    if kind.startswith("user."):
        if kind == "user.removed":
            copy["users"].pop(data["id"], None)
        else:
            copy["users"][data["id"]] = {
                "id": data["id"],
                "userName": data["userName"],
                "status": data["status"],
                "organization": data["organization"]["name"],
                "roles": sorted(r["name"] for r in data["roles"]),
            }
    elif kind in ("group.created", "group.renamed", "group.updated"):
        group = copy["groups"].setdefault(data["id"], {"id": data["id"], "members": []})
        group["displayName"] = data["displayName"]
    elif kind == "group.deleted":
        copy["groups"].pop(data["id"], None)
    elif kind in ("group.member_added", "group.member_removed"):
        group = copy["groups"].setdefault(
            data["group"]["id"],
            {"id": data["group"]["id"], "displayName": data["group"]["displayName"], "members": []},
        )
        members = set(group["members"])
        if kind == "group.member_added":
            members.add(data["user"]["id"])
        else:
            members.discard(data["user"]["id"])
        group["members"] = sorted(members)


def save(path, copy):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(copy, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", default="directory.json", help="the local copy (JSON)")
    parser.add_argument("--once", action="store_true", help="apply what is there, then exit")
    args = parser.parse_args()
    base = os.environ.get("MUSTER_URL", "http://127.0.0.1:8080").rstrip("/")
    token = os.environ.get("MUSTER_TOKEN") or sys.exit("set MUSTER_TOKEN to an application credential")

    copy = None
    if os.path.exists(args.state):
        with open(args.state) as f:
            copy = json.load(f)
    while True:
        if copy is None:
            copy = full_read(base, token)
            save(args.state, copy)
        try:
            page = get(base, token, "/events",
                       {"after": copy["after"], "limit": 1000, "wait": 0 if args.once else 30})
        except Gone:
            print("events after our cursor are no longer kept: reading the directory again", file=sys.stderr)
            copy = None
            continue
        for event in page["events"]:
            apply(copy, event)
        copy["after"] = page["nextAfter"]
        save(args.state, copy)
        if args.once and not page["events"]:
            return


if __name__ == "__main__":
    main()
